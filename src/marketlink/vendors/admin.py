from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from marketlink.vendors import services
from marketlink.vendors.models import VendorProfile


@admin.register(VendorProfile)
class VendorProfileAdmin(admin.ModelAdmin):
    list_display = (
        "business_name",
        "user",
        "is_active",
        "suspended",
        "payouts_ready",
        "created_at",
    )
    list_filter = ("suspended", "is_active", "payouts_ready", "created_at")
    search_fields = ("business_name", "address", "id")
    # payouts_ready follows the vendor's payout account (the payouts app writes it).
    readonly_fields = ("id", "suspended_at", "payouts_ready", "created_at", "updated_at")
    raw_id_fields = ("user",)
    actions = ("suspend", "reinstate")

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        services.suspension_stamp(obj)
        super().save_model(request, obj, form, change)

    @admin.action(description="Suspend the selected vendors (they sell nothing until lifted)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[VendorProfile]) -> None:
        count = services.vendors_suspend(queryset)
        self.message_user(request, f"{count} vendor(s) suspended.", messages.SUCCESS)

    @admin.action(description="Lift the suspension of the selected vendors")
    def reinstate(self, request: HttpRequest, queryset: QuerySet[VendorProfile]) -> None:
        count = services.vendors_reinstate(queryset)
        self.message_user(request, f"{count} suspension(s) lifted.", messages.SUCCESS)
