from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.services import outbox_retry


@admin.register(OutboxEntry)
class OutboxEntryAdmin(admin.ModelAdmin):
    """What marketlink still owes after a state change (an invoice, a refund, a transfer),
    and what failed for good: staff fix the cause, then "Try again"."""

    list_display = ("dedupe_key", "kind", "status", "needs_attention", "attempts", "due_at")
    list_filter = ("needs_attention", "status", "kind")
    search_fields = ("dedupe_key", "subject_id", "last_error")
    readonly_fields = [f.name for f in OutboxEntry._meta.fields]
    actions = ["try_again"]

    @admin.action(description="Try again now (failed or waiting entries)")
    def try_again(self, request: HttpRequest, queryset: QuerySet[OutboxEntry]) -> None:
        count = outbox_retry(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} entr(ies) due again.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
