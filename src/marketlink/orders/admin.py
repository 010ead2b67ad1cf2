from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from marketlink.audit import acting
from marketlink.orders.models import OrderStatusChange, RepairOrder


class ActingAdmin(admin.ModelAdmin):
    """Admin actions run in the ``audit`` scope of the staff user who chose them, so the
    orders they change name that user in their history. Every action goes through
    ``response_action``, a host's own actions on these pages included."""

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        with acting(user=request.user):
            return super().response_action(request, queryset, *args, **kwargs)


class OrderStatusChangeInline(admin.TabularInline):
    model = OrderStatusChange
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "source", "actor", "operator", "note")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderStatusChange]:
        return super().get_queryset(request).select_related("actor")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(RepairOrder)
class RepairOrderAdmin(ActingAdmin):
    """Orders are read-only here: status changes must go through the state machine (CLI/API)."""

    list_display = (
        "id",
        "customer_email",
        "vendor_name",
        "variant_name",
        "total_amount",
        "currency",
        "status",
        "expires_at",
        "created_at",
    )
    list_filter = ("status", "currency", "created_at")
    search_fields = ("id", "customer_email", "vendor_name", "variant_name", "payment_intent_id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in RepairOrder._meta.fields]
    inlines = [OrderStatusChangeInline]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
