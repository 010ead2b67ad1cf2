from django.apps import AppConfig


class MarketlinkConfig(AppConfig):
    """The core app: system checks, templates and the API frame shared by the domain apps."""

    name = "marketlink"
    label = "marketlink"
    verbose_name = "marketlink"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from marketlink import checks

        checks.register()
