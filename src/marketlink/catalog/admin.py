from django.contrib import admin

from marketlink.catalog.models import Service, ServiceVariant


class ServiceVariantInline(admin.TabularInline):
    model = ServiceVariant
    extra = 0
    fields = ("name", "price", "estimated_minutes", "stock", "archived_at")


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "vendor", "archived_at", "created_at")
    list_filter = ("archived_at", "created_at")
    search_fields = ("name", "description", "vendor__business_name", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    list_select_related = ("vendor",)
    inlines = [ServiceVariantInline]


@admin.register(ServiceVariant)
class ServiceVariantAdmin(admin.ModelAdmin):
    list_display = ("name", "service", "price", "stock", "estimated_minutes", "archived_at")
    list_filter = ("archived_at",)
    search_fields = ("name", "service__name", "service__vendor__business_name", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    list_select_related = ("service",)
