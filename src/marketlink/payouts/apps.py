from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "marketlink.payouts"
    label = "marketlink_payouts"
    verbose_name = "marketlink payouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Orders and payments sit below payouts and never import it: they reach it through
        # the hooks it fills in here.
        from marketlink.orders import payout_hooks
        from marketlink.payments import event_hooks
        from marketlink.payments.gateways.base import EventKind
        from marketlink.payouts import handlers
        from marketlink.payouts.selectors import PayoutView

        payout_hooks.register(PayoutView())
        for kind in (EventKind.ACCOUNT_UPDATED, EventKind.CAPABILITY_UPDATED):
            event_hooks.handle_with(
                kind, handlers.on_account_changed, read=handlers.with_fresh_account
            )
        event_hooks.handle_with(EventKind.ACCOUNT_DEAUTHORIZED, handlers.on_deauthorized)
