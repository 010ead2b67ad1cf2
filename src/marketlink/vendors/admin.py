from django.contrib import admin

from marketlink.vendors.models import VendorProfile


@admin.register(VendorProfile)
class VendorProfileAdmin(admin.ModelAdmin):
    list_display = ("business_name", "user", "is_active", "created_at")
    list_filter = ("is_active", "created_at")
    search_fields = ("business_name", "address", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    raw_id_fields = ("user",)
