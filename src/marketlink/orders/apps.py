from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "marketlink.orders"
    label = "marketlink_orders"
    verbose_name = "marketlink orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The catalogue shows availability but may not import orders, which knows the
        # reservations: it asks through this hook.
        from marketlink.catalog.selectors import answer_available_stock_with
        from marketlink.orders.stock import available_stock

        answer_available_stock_with(available_stock)
