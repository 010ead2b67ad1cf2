from django.contrib import admin

from marketlink.orders.models import OrderStatusChange, RepairOrder


class OrderStatusChangeInline(admin.TabularInline):
    model = OrderStatusChange
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "source", "note")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(RepairOrder)
class RepairOrderAdmin(admin.ModelAdmin):
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
