from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "marketlink.payments"
    label = "marketlink_payments"
    verbose_name = "marketlink payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from marketlink.orders import payment_hooks
        from marketlink.orders.signals import order_status_changing
        from marketlink.outbox.registry import Kind, one_at_a_time, register
        from marketlink.payments import periodic  # noqa: F401 - registers the periodic jobs
        from marketlink.payments.checkout import checkout_close
        from marketlink.payments.hooks import Payments
        from marketlink.payments.invoices import invoice_gave_up, invoices_send
        from marketlink.payments.receivers import (
            CHECKOUT_EXPIRY_KIND,
            INVOICE_KIND,
            owe_what_the_change_does,
        )
        from marketlink.payments.refunds import REFUND_KIND, refund_gave_up, refund_outbox_handle

        payment_hooks.register(Payments())
        order_status_changing.connect(
            owe_what_the_change_does, dispatch_uid="marketlink.payments.owed"
        )
        register(Kind(INVOICE_KIND, invoices_send, on_give_up=invoice_gave_up))
        register(Kind(CHECKOUT_EXPIRY_KIND, one_at_a_time(checkout_close)))
        register(Kind(REFUND_KIND, one_at_a_time(refund_outbox_handle), on_give_up=refund_gave_up))
