from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "marketlink.payments"
    label = "marketlink_payments"
    verbose_name = "marketlink payments"
    default_auto_field = "django.db.models.BigAutoField"
