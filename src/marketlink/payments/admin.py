from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from marketlink.exceptions import MarketlinkError
from marketlink.orders.admin import ActingAdmin, RepairOrderAdmin
from marketlink.orders.models import ChangeSource
from marketlink.payments.models import (
    Dispute,
    DummyCheckoutSession,
    EventStatus,
    Invoice,
    InvoiceStatus,
    PaymentEvent,
    Refund,
)
from marketlink.payments.resend import Resend, invoice_resend
from marketlink.payments.selectors import invoices_needing_attention
from marketlink.payments.webhooks import event_process


@admin.register(PaymentEvent)
class PaymentEventAdmin(ActingAdmin):
    list_display = (
        "event_id",
        "event_type",
        "status",
        "needs_attention",
        "attempts",
        "order",
        "created_at",
    )
    list_filter = ("status", "needs_attention", "event_type", "gateway", "created_at")
    search_fields = ("event_id", "order__id", "last_error", "result")
    readonly_fields = [f.name for f in PaymentEvent._meta.fields]
    date_hierarchy = "created_at"
    actions = ["process_again"]

    @admin.action(description="Process again (events not processed yet)")
    def process_again(self, request: HttpRequest, queryset: QuerySet[PaymentEvent]) -> None:
        done = 0
        for event in queryset.exclude(status__in=[EventStatus.PROCESSED, EventStatus.IGNORED]):
            try:
                event_process(record_id=event.pk, source=ChangeSource.ADMIN)
                done += 1
            except MarketlinkError as exc:
                self.message_user(request, f"{event.event_id}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Processed {done} event(s) again.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "needs_attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Failed, or pending with no retry coming")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        if self.value() == "yes":
            return queryset & invoices_needing_attention()
        return queryset


@admin.register(Invoice)
class InvoiceAdmin(ActingAdmin):
    list_display = ("number", "order", "status", "attempts", "last_attempt_at", "sent_at")
    list_filter = (NeedsAttentionFilter, "status", "created_at")
    search_fields = ("number", "order__id", "order__customer_email", "last_error")
    readonly_fields = [f.name for f in Invoice._meta.fields]
    actions = ["send_again"]

    @admin.action(description="Send again (invoices not sent yet)")
    def send_again(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        # One try each, now, so staff see the outcome; a sent invoice is never sent again.
        sent = 0
        for invoice in queryset.exclude(status=InvoiceStatus.SENT).select_related("order"):
            if invoice_resend(order=invoice.order) == Resend.SENT:
                sent += 1
                continue
            invoice.refresh_from_db()
            if invoice.status == InvoiceStatus.SENT:
                sent += 1
            else:
                self.message_user(
                    request, f"{invoice.number}: {invoice.last_error}", messages.ERROR
                )
        self.message_user(request, f"Sent {sent} invoice(s).")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    """Refunds are made through the refund endpoint or by marketlink itself; here staff see
    which ones are flagged (could not be made, failed at the provider) and why."""

    list_display = (
        "payment_intent_id",
        "order",
        "kind",
        "status",
        "needs_attention",
        "attempts",
        "updated_at",
    )
    list_filter = ("status", "needs_attention", "kind")
    search_fields = ("payment_intent_id", "provider_refund_id", "order__id", "last_error")
    readonly_fields = [f.name for f in Refund._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    list_display = ("provider_dispute_id", "order", "outcome", "needs_attention", "opened_at")
    list_filter = ("outcome", "needs_attention")
    search_fields = ("provider_dispute_id", "payment_intent_id", "order__id")
    readonly_fields = [f.name for f in Dispute._meta.fields if f.name != "needs_attention"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(DummyCheckoutSession)
class DummyCheckoutSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "status", "payment_status", "expires_at")
    list_filter = ("status", "payment_status")
    readonly_fields = [f.name for f in DummyCheckoutSession._meta.fields]


class PaymentEventInline(admin.TabularInline):
    model = PaymentEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "event_type", "status", "needs_attention", "result", "last_error")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


# The order page shows its payments too; added from here so orders never depend on payments.
RepairOrderAdmin.inlines = [*RepairOrderAdmin.inlines, PaymentEventInline]
