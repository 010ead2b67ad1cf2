#!/usr/bin/env python
"""Payouts under load: 1,000 completed orders released by one ``marketlink payouts release
--due`` against the Stripe stand-in, as an operator runs it after the consumer was down.

    python bench/payouts.py              # 1,000 orders (about a minute to set up)
    python bench/payouts.py --orders 200

It (re)creates the bench database (``ml_bench``) and empties Redis db 7, as ``bench/run.py``
does; starts the stand-in in this process; onboards the bench vendor (its account made by the
site at the stand-in); places the orders, pays them at the stand-in and delivers their
``checkout.session.completed`` through the webhook pipeline; moves them to completed, which
writes one ``payout_release`` outbox row each (no consumer runs: the rows wait); then times the
command, run as an operator runs it (its own process, on ``bench.settings``). It prints the
orders released per second and exits 1 unless every order got exactly one transfer, of its
share, and the payouts and the stand-in agree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Run as a script, ``bench/`` itself is sys.path[0]; import it as the ``bench`` package instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]

from bench import stack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--database-url", default=stack.DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=stack.DEFAULT_REDIS_URL)
    args = parser.parse_args()

    stack.reset_stores(args.database_url, args.redis_url)
    standin = stack.start_standin()
    os.environ.update(
        MARKETLINK_PAYOUTS="on",
        MARKETLINK_PLATFORM_FEE_PERCENT="10",
        STRIPE_CONNECT_WEBHOOK_SECRET=standin.connect_webhook_secret,
    )
    stack.django_setup(args.database_url, args.redis_url)
    started = time.monotonic()
    orders = completed_orders(standin, args.orders)
    print(f"{len(orders)} completed orders ready in {time.monotonic() - started:.1f} s")

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    command = [str(Path(sys.executable).with_name("marketlink")), "--settings=bench.settings"]
    if os.environ.get("BENCH_PROFILE"):  # where the command's time goes (cProfile's output)
        command = [sys.executable, "-m", "cProfile", "-o", os.environ["BENCH_PROFILE"], *command]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "payouts", "release", "--due", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    summary = json.loads(done.stdout)["summary"] if done.stdout else {}
    problems = check(standin, orders) + ([] if done.returncode == 0 else [done.stderr[-2000:]])
    print(
        f"payouts release --due: {summary.get('released')} released in {elapsed:.1f} s "
        f"({len(orders) / elapsed:.0f} orders/s, the command's start-up included); exit "
        f"{done.returncode}"
    )
    for problem in problems[:20]:
        print("PROBLEM:", problem)
    standin.stop()
    return 1 if problems else 0


def completed_orders(standin: object, count: int) -> list[str]:
    from marketlink.orders.models import ChangeSource, OrderStatus
    from marketlink.orders.services import order_transition
    from marketlink.payments.webhooks import webhook_receive
    from marketlink.payouts.accounts import account_of_vendor, account_refresh

    seeded = stack.migrate_and_seed()
    vendor = seeded["vendor"]
    account = account_of_vendor(vendor)
    standin.finish_onboarding(account.account_id)  # type: ignore[attr-defined]
    account_refresh(account)
    orders, events = stack.paid_checkouts(
        standin, vendor, seeded["customers"], "payouts", count, "http://bench.example/"
    )
    for event in events:
        if event["type"] == "checkout.session.completed":
            payload = json.dumps(event).encode()
            webhook_receive(payload=payload, signature=standin.sign(payload))  # type: ignore[attr-defined]
    for order in orders:
        for to, expected in (
            (OrderStatus.PROCESSING, OrderStatus.PAID),
            (OrderStatus.COMPLETED, OrderStatus.PROCESSING),
        ):
            order_transition(order_id=order.pk, to=to, expected=expected, source=ChangeSource.CLI)
    return [str(order.pk) for order in orders]


def check(standin: object, orders: list[str]) -> list[str]:
    """Exactly one transfer per order, of its share, and every payout released with it."""
    from marketlink.money import to_minor_units
    from marketlink.payouts.models import Payout

    transfers = standin.transfers.values()  # type: ignore[attr-defined]
    per_order = Counter(t["metadata"]["order_id"] for t in transfers)
    problems = [f"order {o}: {per_order[o]} transfers" for o in orders if per_order[o] != 1]
    amounts = {t["metadata"]["order_id"]: t["amount"] for t in transfers}
    for payout in Payout.objects.filter(order_id__in=orders).select_related("order"):
        if payout.status != "released" or payout.transfer_id is None:
            problems.append(f"order {payout.order_id}: payout {payout.status}")
        elif amounts.get(str(payout.order_id)) != to_minor_units(payout.share, payout.currency):
            problems.append(f"order {payout.order_id}: transfer of the wrong amount")
    return problems


if __name__ == "__main__":
    sys.exit(main())
