from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "marketlink.accounts"
    label = "marketlink_accounts"
    verbose_name = "marketlink accounts"
    default_auto_field = "django.db.models.BigAutoField"
