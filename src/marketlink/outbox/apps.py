from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "marketlink.outbox"
    label = "marketlink_outbox"
    verbose_name = "marketlink outbox"
    default_auto_field = "django.db.models.BigAutoField"
