from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "marketlink.catalog"
    label = "marketlink_catalog"
    verbose_name = "marketlink catalogue"
    default_auto_field = "django.db.models.BigAutoField"
