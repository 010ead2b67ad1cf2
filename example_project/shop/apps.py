from django.apps import AppConfig


class ShopConfig(AppConfig):
    """The host site's own app: here, just the custom email-login user a new site would have."""

    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"
