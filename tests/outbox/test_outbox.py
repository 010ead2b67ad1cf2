"""The outbox itself, with a kind of its own registered for the test: one row per effect owed,
written or rolled back with the change; claims, lapsed claims and a drainer that lost its claim;
entries of a kind no app handles; the wake that may fail; and the operator's ``marketlink outbox
list|retry``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cli_runner import invoke_json
from django.core import checks
from django.db import transaction
from django.utils import timezone

from marketlink.outbox import registry, tasks
from marketlink.outbox.claims import hold
from marketlink.outbox.drainer import claim, drain, record, run
from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.registry import Done, Failed, Kind, Outcome, Retry, one_at_a_time
from marketlink.outbox.services import outbox_write

pytestmark = pytest.mark.django_db


class Greetings:
    """A kind of effect for the test: it records whom it greeted; some names fail."""

    def __init__(self) -> None:
        self.greeted: list[str] = []
        self.fail: dict[str, Outcome] = {}

    def greet(self, entry: OutboxEntry) -> Outcome:
        if entry.subject_id in self.fail:
            return self.fail[entry.subject_id]
        if entry.subject_id == "boom":
            raise RuntimeError("the greeter fell over")
        self.greeted.append(entry.subject_id)
        return Done(f"greeted {entry.subject_id}")


@pytest.fixture
def greetings(monkeypatch: pytest.MonkeyPatch) -> Greetings:
    kind = Greetings()
    monkeypatch.setitem(registry._kinds, "greeting", Kind("greeting", one_at_a_time(kind.greet)))
    return kind


def owe(*subjects: str) -> None:
    for subject in subjects:
        outbox_write(kind="greeting", subject_id=subject, wake=False)


def test_an_effect_owed_twice_is_one_entry_and_runs_once(greetings):
    owe("ada", "ada")
    with transaction.atomic():
        owe("ada")

    assert OutboxEntry.objects.filter(dedupe_key="greeting:ada").count() == 1
    assert drain() == {"done": 1}
    assert drain() == {}
    assert greetings.greeted == ["ada"]


def test_an_effect_owed_in_a_change_rolled_back_is_not_owed(greetings):
    def change_that_fails() -> None:
        with transaction.atomic():
            owe("bob")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()

    assert not OutboxEntry.objects.exists()
    assert drain() == {}


def test_a_claim_that_lapsed_is_due_again_and_its_old_drainer_cannot_record(greetings):
    owe("cy")
    [stale] = claim(10)
    assert claim(10) == []  # held: no second drainer takes it
    OutboxEntry.objects.filter(pk=stale.pk).update(claimed_until=timezone.now() - timedelta(1))

    assert drain() == {"done": 1}
    # The first drainer comes back from the dead and reports a failure: it is not its to say.
    record(stale, Failed("late news"), None)
    entry = OutboxEntry.objects.get()
    assert (entry.status, entry.attempts, entry.needs_attention) == ("done", 2, False)
    assert greetings.greeted == ["cy"]


def test_failures_retry_then_fail_for_good_and_an_exception_is_a_retry(greetings):
    owe("dee", "boom", "eve")
    greetings.fail = {"dee": Failed("no such person"), "eve": Retry("away")}

    assert drain() == {"failed": 1, "retry": 2}

    states = dict(OutboxEntry.objects.values_list("subject_id", "status"))
    assert states == {"dee": "failed", "boom": "pending", "eve": "pending"}
    boom = OutboxEntry.objects.get(subject_id="boom")
    assert "the greeter fell over" in boom.last_error
    assert boom.due_at > timezone.now()
    assert OutboxEntry.objects.get(subject_id="dee").needs_attention


def test_an_entry_of_a_kind_no_app_handles_waits(greetings):
    outbox_write(kind="unheard_of", subject_id="x", wake=False)
    assert drain() == {"retry": 1}
    entry = OutboxEntry.objects.get()
    assert "no handler for 'unheard_of'" in entry.last_error
    assert entry.status == "pending"


def test_a_wake_that_cannot_reach_the_queue_loses_nothing(greetings, monkeypatch, caplog):
    def queue_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(tasks, "drain_outbox", queue_down)
    monkeypatch.setattr(tasks.HUEY, "immediate", True)

    tasks.wake()  # what runs once a change owing an effect commits

    assert "could not wake the outbox drainer" in caplog.text
    owe("fay")
    assert tasks.drain_outbox_periodically.call_local() == {"done": 1}
    assert greetings.greeted == ["fay"]


def test_the_operator_lists_what_is_owed_and_runs_the_failed_again(greetings):
    owe("gus", "hal")
    greetings.fail = {"gus": Failed("address unknown")}
    drain()

    code, listed = invoke_json("outbox", "list", "--status", "failed")
    assert code == 1  # a failed entry needs a person
    assert [(i["subject"], i["detail"]) for i in listed["items"]] == [("gus", "address unknown")]

    code, dry = invoke_json("outbox", "retry", "--dry-run")
    assert (code, [i["subject"] for i in dry["items"]], greetings.greeted) == (0, ["gus"], ["hal"])

    greetings.fail = {}  # the cause fixed
    code, retried = invoke_json("outbox", "retry", "--kind", "greeting")
    assert code == 0
    assert retried["summary"]["done"] == 1
    assert greetings.greeted == ["hal", "gus"]
    assert invoke_json("outbox", "list")[1]["items"] == []


def test_a_site_without_the_outbox_app_is_told_at_once(settings):
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "marketlink.outbox"]
    errors = [m for m in checks.run_checks() if m.id == "marketlink.E002"]
    assert any("marketlink.outbox" in m.msg for m in errors)


def test_staff_run_failed_entries_again_from_the_admin(greetings, admin_client):
    owe("ida")
    greetings.fail = {"ida": Failed("not today")}
    drain()
    entry = OutboxEntry.objects.get()

    page = admin_client.get("/admin/marketlink_outbox/outboxentry/", {"needs_attention__exact": 1})
    assert "greeting:ida" in page.content.decode()
    greetings.fail = {}
    admin_client.post(
        "/admin/marketlink_outbox/outboxentry/",
        {"action": "try_again", "_selected_action": [str(entry.pk)]},
    )
    assert OutboxEntry.objects.get().status == "pending"
    assert drain() == {"done": 1}


def test_an_entry_of_a_kind_no_app_handles_fails_for_good_in_the_end(greetings):
    outbox_write(kind="unheard_of", subject_id="y", wake=False)
    for _ in range(8):
        assert drain() == {"retry": 1}
        OutboxEntry.objects.update(due_at=timezone.now())
    assert drain() == {"failed": 1}
    entry = OutboxEntry.objects.get()
    assert (entry.status, entry.needs_attention, entry.attempts) == ("failed", True, 9)


def test_done_entries_are_forgotten_after_a_week_and_the_failed_are_kept(greetings):
    owe("jo", "kim", "lu")
    greetings.fail = {"lu": Failed("no")}
    drain()
    OutboxEntry.objects.filter(subject_id="jo").update(done_at=timezone.now() - timedelta(days=8))
    OutboxEntry.objects.filter(subject_id="lu").update(updated_at=timezone.now() - timedelta(9))

    tasks.drain_outbox_periodically.call_local()

    assert sorted(OutboxEntry.objects.values_list("subject_id", "status")) == [
        ("kim", "done"),
        ("lu", "failed"),
    ]


def test_the_operators_retry_leaves_what_is_owed_for_later(greetings):
    owe("max")
    OutboxEntry.objects.update(due_at=timezone.now() + timedelta(days=30))
    code, document = invoke_json("outbox", "retry")
    assert (code, document["items"], greetings.greeted) == (0, [], [])
    code, document = invoke_json("outbox", "retry", "--status", "pending")
    assert (code, greetings.greeted) == (0, ["max"])


def test_a_slow_drainer_whose_claim_lapsed_leaves_the_entry_to_the_one_that_took_it(greetings):
    """Alive but slow (a mail server taking its time): its claims lapse, another drainer takes
    the entries, and the slow one, reaching them at last, does nothing more with them."""
    owe("nia", "oz")
    slow = claim(10)
    lapsed = timezone.now() - timedelta(seconds=1)  # time passes, for everyone
    OutboxEntry.objects.update(claimed_until=lapsed)
    for entry in slow:
        entry.claimed_until = lapsed
    assert drain() == {"done": 2}  # the other drainer

    assert run(slow, "greeting") == {}  # the slow one comes back: nothing to do, nothing said
    assert sorted(greetings.greeted) == ["nia", "oz"]
    assert set(OutboxEntry.objects.values_list("status", "attempts")) == {("done", 2)}


def test_a_drainer_keeps_its_claim_while_it_works(greetings, settings):
    settings.MARKETLINK = {"OUTBOX_CLAIM_SECONDS": 60}
    owe("pat")
    [entry] = claim(1)
    OutboxEntry.objects.update(claimed_until=timezone.now() + timedelta(seconds=20))
    entry.claimed_until = OutboxEntry.objects.get().claimed_until  # past half of its claim

    assert hold(entry)
    kept = OutboxEntry.objects.get().claimed_until
    assert kept > timezone.now() + timedelta(seconds=50)
    assert entry.claimed_until == kept
