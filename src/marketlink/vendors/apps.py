from django.apps import AppConfig


class VendorsConfig(AppConfig):
    name = "marketlink.vendors"
    label = "marketlink_vendors"
    verbose_name = "marketlink vendors"
    default_auto_field = "django.db.models.BigAutoField"
