"""The contract every ``marketlink`` command keeps (marketlink.operations): ``--since`` spellings,
the exit code when several outcomes apply, one JSON document on stdout with --json, and the
dependency-down and not-migrated answers."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import typer
from cli_runner import invoke, migrated_site, run_console_script

from marketlink.operations.report import ExitCode, Report
from marketlink.operations.since import parse_since

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("24h", NOW - timedelta(hours=24)),
        ("1d", NOW - timedelta(days=1)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-11-30T08:00:00Z", datetime(2026, 11, 30, 8, tzinfo=UTC)),
        ("2026-11-30T08:00:00", datetime(2026, 11, 30, 8, tzinfo=UTC)),
        ("2026-11-30T09:00:00+01:00", datetime(2026, 11, 30, 8, tzinfo=UTC)),
    ],
)
def test_since_takes_durations_and_iso_times(value, expected):
    assert parse_since(value, now=NOW) == expected


@pytest.mark.parametrize(
    "value", ["yesterday", "10x", "", "2027-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00"]
)
def test_since_refuses_what_it_cannot_read_or_the_future(value):
    with pytest.raises(typer.BadParameter):
        parse_since(value, now=NOW)


def test_the_highest_exit_code_wins():
    report = Report(title="t", columns=())
    report.needs_attention("a person is needed")
    report.unreachable("the provider is down")
    report.needs_attention("another")
    assert report.exit_code == ExitCode.UNREACHABLE
    assert report.document()["summary"]["exit_code"] == 3
    assert report.document()["summary"]["notes"] == [
        "a person is needed",
        "the provider is down",
        "another",
    ]


def test_a_database_that_cannot_be_reached_exits_3_with_one_json_document():
    result = run_console_script(
        "webhooks", "list", "--json", database_url="postgres://postgres@127.0.0.1:9/none"
    )
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert document["summary"]["exit_code"] == 3
    assert document["summary"]["notes"][0].startswith("database unreachable")


def test_an_unmigrated_database_is_a_configuration_error(tmp_path):
    result = run_console_script(
        "webhooks", "list", "--json", database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    )
    assert result.returncode == 2
    assert "migrate" in result.stderr
    assert result.stdout == ""


def test_with_json_an_email_sent_inline_goes_to_stderr_not_into_the_document(tmp_path):
    # The README's starting setup: tasks run inline, email printed by the console backend.
    embedded = {
        "REDIS_URL": "",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
    }
    url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    migrated_site(url, embedded)
    seeded = run_console_script(
        "seed", "--vendors", "1", "--customers", "1", "--orders", "2", "--json",
        database_url=url, env=embedded, timeout=300,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    with sqlite3.connect(tmp_path / "site.sqlite3") as database:
        [(paid,)] = database.execute(
            "SELECT id FROM marketlink_orders_repairorder WHERE status = 'paid'"
        ).fetchall()

    result = run_console_script(
        "invoices", "resend", str(uuid.UUID(paid)), "--force", "--json",
        database_url=url, env=embedded,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout: one document, nothing else
    assert document["summary"]["sent"] == 1
    # The email was sent, and printed where it belongs (its Subject header may be folded).
    assert "Subject:" in result.stderr
    assert "Invoice ML-" in result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("unit", ["s", "m", "h", "d", "w"])
def test_a_since_further_back_than_a_date_can_go_is_a_usage_error_naming_the_largest(unit):
    result = invoke("webhooks", "list", "--since", f"999999999999{unit}")
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())
    largest = re.search(rf"the largest allowed is (\d+){unit}\b", message)
    assert largest, message
    assert invoke("webhooks", "list", "--since", f"{largest[1]}{unit}").exit_code == 0
