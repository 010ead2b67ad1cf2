from django.contrib import admin

from marketlink.accounts.models import Account


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("email", "role", "user", "created_at")
    list_filter = ("role", "created_at")
    search_fields = ("email", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    raw_id_fields = ("user",)
