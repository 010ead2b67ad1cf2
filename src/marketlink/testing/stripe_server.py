"""The Stripe stand-in's historical home and command line; the stand-in itself (and its
documentation) is the package ``marketlink.testing.stripe``.

Run by hand (blocks until Ctrl-C)::

    python -m marketlink.testing.stripe_server --port 12111 \\
        --webhook-url http://127.0.0.1:8000/api/webhooks/payment/ --webhook-secret whsec_x \\
        --connect-webhook-url http://127.0.0.1:8000/api/webhooks/connect/ \\
        --connect-webhook-secret whsec_connect_x
"""

import argparse
import logging
import threading
from collections.abc import Sequence
from contextlib import suppress

from marketlink.testing.stripe import (
    API_VERSION,
    Delivery,
    RecordedRequest,
    StandInError,
    StripeStandIn,
)

__all__ = ["API_VERSION", "Delivery", "RecordedRequest", "StandInError", "StripeStandIn", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m marketlink.testing.stripe_server",
        description="Serve a local stand-in for Stripe's API until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default="sk_test_standin")
    parser.add_argument("--webhook-url")
    parser.add_argument("--webhook-secret", default="whsec_standin")
    parser.add_argument("--connect-webhook-url")
    parser.add_argument("--connect-webhook-secret", default="whsec_connect_standin")
    parser.add_argument("--platform-country", default="US")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    standin = StripeStandIn(
        api_key=args.api_key,
        webhook_secret=args.webhook_secret,
        webhook_url=args.webhook_url,
        connect_webhook_secret=args.connect_webhook_secret,
        connect_webhook_url=args.connect_webhook_url,
        platform_country=args.platform_country,
        host=args.host,
        port=args.port,
    )
    with standin:
        print(
            f"Stripe stand-in on {standin.api_base} (API key {args.api_key}); Ctrl-C stops it.",
            flush=True,
        )
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
