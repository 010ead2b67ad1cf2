"""Payouts in the admin: each vendor's account and ledger (read only), each order's payout with
staff's actions (release it, ask a refused reversal again, charge a dashboard partial refund to
the vendor, settle a debt), and the ledger, where staff add only adjustments."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from marketlink.conf import get as settings_of
from marketlink.exceptions import MarketlinkError
from marketlink.orders.admin import ActingAdmin
from marketlink.payments.gateways.base import GatewayError
from marketlink.payouts import staff
from marketlink.payouts.accounts import account_refresh
from marketlink.payouts.models import ConnectedAccount, Payout, PayoutEntry
from marketlink.payouts.selectors import balance_of, debt_recoverable, entries_of


def _each(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    act: Callable[[Any], str],
) -> None:
    for item in queryset:
        try:
            said = act(item)
        except (MarketlinkError, GatewayError) as exc:
            model_admin.message_user(request, f"{item}: {exc.message}", messages.ERROR)
            continue
        model_admin.message_user(request, f"{item}: {said}", messages.SUCCESS)


@admin.register(ConnectedAccount)
class ConnectedAccountAdmin(ActingAdmin):
    """A vendor's payout account as last read, and their ledger: read only."""

    list_display = (
        "vendor",
        "account_id",
        "ready",
        "payouts_enabled",
        "transfers_active",
        "deauthorized",
        "needs_attention",
    )
    list_filter = ("payouts_enabled", "transfers_active", "deauthorized", "needs_attention")
    search_fields = ("account_id", "vendor__business_name")
    readonly_fields = [f.name for f in ConnectedAccount._meta.fields] + ["balance", "ledger"]
    actions = ["read_again"]

    @admin.display(boolean=True)
    def ready(self, account: ConnectedAccount) -> bool:
        return account.ready

    @admin.display(description="balance")
    def balance(self, account: ConnectedAccount) -> str:
        found = balance_of(account.vendor, settings_of().CURRENCY)
        return (
            f"held {found.held}, released {found.released}, reversed {found.reversed}, "
            f"debt {found.debt} {found.currency.upper()}"
        )

    @admin.display(description="ledger (newest first)")
    def ledger(self, account: ConnectedAccount) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (e.created_at, e.order_id or "", e.kind, e.amount, e.provider_id, e.note)
                for e in entries_of(account.vendor)[:200]
            ),
        )
        return format_html(
            "<table><tr><th>when</th><th>order</th><th>kind</th><th>amount</th>"
            "<th>provider id</th><th>note</th></tr>{}</table>",
            rows,
        )

    @admin.action(description="Read the accounts again from the provider")
    def read_again(self, request: HttpRequest, queryset: QuerySet[ConnectedAccount]) -> None:
        _each(self, request, queryset, lambda a: f"ready: {account_refresh(a).ready}")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Payout)
class PayoutAdmin(ActingAdmin):
    list_display = (
        "order",
        "vendor",
        "status",
        "amount",
        "transfer_id",
        "debt",
        "disputed",
        "needs_attention",
        "updated_at",
    )
    list_filter = ("status", "needs_attention", "disputed")
    search_fields = ("order__id", "transfer_id", "vendor__business_name", "note")
    readonly_fields = [f.name for f in Payout._meta.fields]
    actions = ["release", "reverse_again", "reverse_part", "settle_debt"]

    @admin.action(description="Release payout (paid and held, or failed)")
    def release(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        _each(self, request, queryset, staff.payout_release_now)

    @admin.action(description="Retry reversal (of a debt)")
    def reverse_again(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        _each(self, request, queryset, staff.reversal_again)

    @admin.action(description="Reverse part (a partial refund made in the provider's dashboard)")
    def reverse_part(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        _each(self, request, queryset, staff.partial_refund_charge)

    @admin.action(description="Settle debt (an adjustment with a note)")
    def settle_debt(self, request: HttpRequest, queryset: QuerySet[Payout]) -> HttpResponseRedirect:
        payout = queryset.filter(debt__gt=0).first() or queryset.first()
        initial: dict[str, str] = {}
        if payout is not None:
            initial = {
                "vendor": str(payout.vendor_id),
                "order": str(payout.order_id),
                "amount": str(payout.debt),
            }
        url = reverse("admin:marketlink_payouts_payoutentry_add")
        return HttpResponseRedirect(f"{url}?{urlencode(initial)}")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class AdjustmentForm(forms.ModelForm):
    """A debt settled by hand: more than 0, at most what the vendor owes, with a note."""

    class Meta:
        model = PayoutEntry
        fields = ("vendor", "order", "amount", "note")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        vendor, amount = data.get("vendor"), data.get("amount")
        if vendor is not None and amount is not None:
            owed = debt_recoverable(vendor)
            if not 0 < amount <= owed:
                raise forms.ValidationError(
                    f"The vendor owes {owed}: settle more than 0 and at most that."
                )
        if not data.get("note"):
            self.add_error("note", "Say how the debt was settled (paid back, forgiven, ...).")
        return data


@admin.register(PayoutEntry)
class PayoutEntryAdmin(ActingAdmin):
    """The ledger: never changed or deleted. Staff add adjustments only (a debt settled by
    hand, with a note)."""

    form = AdjustmentForm
    list_display = ("created_at", "vendor", "order", "kind", "amount", "provider_id", "note")
    list_filter = ("kind",)
    search_fields = ("vendor__business_name", "order__id", "provider_id", "note")
    raw_id_fields = ("vendor", "order")
    fields = ("vendor", "order", "amount", "note")

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {
            k: v for k, v in super().get_changeform_initial_data(request).items() if k != "kind"
        }

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        entry = staff.debt_settle(
            vendor=obj.vendor,
            amount=Decimal(obj.amount),
            note=obj.note,
            user=request.user,
            order_id=obj.order_id,
        )
        form.instance = entry
        obj.pk = entry.pk

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return obj is None

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
