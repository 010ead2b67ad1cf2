from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "marketlink.payouts"
    label = "marketlink_payouts"
    verbose_name = "marketlink payouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Orders, payments and the outbox sit below payouts and never import it: they reach it
        # through the hooks it fills in here.
        from marketlink.orders import payout_hooks
        from marketlink.orders.models import RepairOrder
        from marketlink.orders.signals import order_status_changing
        from marketlink.payments import event_hooks
        from marketlink.payments.gateways.base import EventKind
        from marketlink.payouts import handlers, releases, services
        from marketlink.payouts.selectors import PayoutView

        payout_hooks.register(PayoutView())
        order_status_changing.connect(
            services.on_order_status_changing,
            sender=RepairOrder,
            dispatch_uid="marketlink.payouts.order_status_changing",
        )
        releases.register_kinds()
        for kind in (EventKind.ACCOUNT_UPDATED, EventKind.CAPABILITY_UPDATED):
            event_hooks.handle_with(
                kind, handlers.on_account_changed, read=handlers.with_fresh_account
            )
        event_hooks.handle_with(EventKind.ACCOUNT_DEAUTHORIZED, handlers.on_deauthorized)
        for kind in (EventKind.TRANSFER_CREATED, EventKind.TRANSFER_REVERSED):
            event_hooks.handle_with(kind, handlers.on_transfer)
        event_hooks.also_on(EventKind.DISPUTE, handlers.on_dispute)
