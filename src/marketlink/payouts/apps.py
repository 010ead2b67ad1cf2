from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "marketlink.payouts"
    label = "marketlink_payouts"
    verbose_name = "marketlink payouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Orders and payments sit below payouts and never import it: they ask through hooks
        # that payouts fills in here.
        from marketlink.orders import payout_hooks
        from marketlink.payouts.selectors import PayoutView

        payout_hooks.register(PayoutView())
