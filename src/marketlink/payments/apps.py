from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "marketlink.payments"
    label = "marketlink_payments"
    verbose_name = "marketlink payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from marketlink.orders import payment_hooks
        from marketlink.orders.signals import order_cancelled, order_paid
        from marketlink.payments import periodic  # noqa: F401 - registers the periodic job
        from marketlink.payments.hooks import Payments
        from marketlink.payments.receivers import (
            close_checkout_of_released_order,
            invoice_paid_order,
        )

        payment_hooks.register(Payments())

        order_cancelled.connect(
            close_checkout_of_released_order, dispatch_uid="marketlink.payments.close_checkout"
        )
        order_paid.connect(invoice_paid_order, dispatch_uid="marketlink.payments.invoice")
