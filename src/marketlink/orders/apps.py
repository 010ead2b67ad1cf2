from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "marketlink.orders"
    label = "marketlink_orders"
    verbose_name = "marketlink orders"
    default_auto_field = "django.db.models.BigAutoField"
