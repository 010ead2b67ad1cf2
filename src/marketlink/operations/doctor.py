"""``marketlink doctor``: is this installation healthy, and if not, what does a person do?

Each check is one item (``check``, ``status``, ``detail``, ``fix``); ``status`` is ``ok``,
``warn`` (a person should look), ``fail`` (broken) or ``unreachable`` (a dependency did not
answer). The exit code follows the worst: 1 for any fail (a person is needed), 3 for any
unreachable; warnings alone exit 0, and the run says so.

Nothing it prints holds a secret or any settings value: the checks build their details from
parts known to be safe (a settings problem's location and message, never its value; a failed
check's error type, not its text), and every line is scrubbed of the configured secrets (keys,
signing secrets, passwords in database or Redis URLs), whole words only, in case a dependency's
error message quotes one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from marketlink import conf
from marketlink.operations.findings import STATUSES, Check, Finding
from marketlink.operations.options import Json
from marketlink.operations.report import Report, progress, say
from marketlink.operations.runner import operation, setup_django, unreachable_dependency

COLUMNS = ("check", "status", "detail", "fix")
HIDDEN = "****"
# What to do about each dependency ``unreachable_dependency`` names.
REACH_FIXES = {
    "database": "Start the database or correct DATABASES (DATABASE_URL), then run doctor again.",
    "Redis": "Start Redis or correct its address in CACHES and HUEY, then run doctor again.",
    "payment provider": "Check the provider's status page and this host's network (and "
    "STRIPE_API_BASE if set), then run doctor again.",
}


def doctor(as_json: Json = False) -> None:
    """Check the settings, the database and its migrations, Redis, the Huey consumer and its
    queue, the payment provider's key and webhook secret, stuck orders, events flagged for
    attention and the stock ledger. Exit 0 all ok, 1 something needs a person, 3 a dependency
    is unreachable. Changes nothing."""
    setup_django()
    from marketlink.operations import doctor_checks, doctor_data

    report = Report(title="Doctor", columns=COLUMNS)
    with operation(report, as_json=as_json):
        say("Checking this marketlink installation (nothing is changed).", as_json=as_json)
        scrub = scrubber(doctor_checks.configured_secrets())
        for status in STATUSES:
            report.summary[status] = 0
        for finding in run_checks(doctor_checks.CHECKS, doctor_data.DATA_CHECKS):
            _record(report, _scrubbed(finding, scrub))
        if report.summary["warn"] and not report.exit_code:
            report.notes.append(
                f"only warnings ({report.summary['warn']}): worth a look, but nothing is broken "
                "(exit 0)"
            )


def run_checks(checks: Iterable[Check], data_checks: Iterable[Check]) -> Iterable[Finding]:
    """Every check's finding, in order. The data checks need the database reachable and
    migrated: when it is not, each is reported as not checked, with the same status."""
    blocker: Finding | None = None
    checks = list(checks)
    data_checks = list(data_checks)
    everything = progress(
        [*checks, *data_checks], total=len(checks) + len(data_checks), description="checking"
    )
    for check in everything:
        if check in data_checks and blocker is not None:
            yield Finding(
                check.__name__.removeprefix("check_").replace("_", " "),
                blocker.status,
                f"not checked: the {blocker.check} check is {blocker.status}",
                blocker.fix,
            )
            continue
        finding = _safely(check)
        if finding.check in {"database", "migrations"} and finding.status != "ok":
            blocker = blocker or finding
        yield finding


def _safely(check: Check) -> Finding:
    """A check that meets a dependency down reports it unreachable instead of ending doctor."""
    name = check.__name__.removeprefix("check_").replace("_", " ")
    try:
        return check()
    except conf.InvalidSettings:
        return Finding(
            name,
            "fail",
            "not checked: settings.MARKETLINK is not valid (the settings check names each problem)",
            "Correct MARKETLINK as `marketlink check` says, then run doctor again.",
        )
    except Exception as exc:
        dependency = unreachable_dependency(exc)
        if dependency is None:
            # Only the type: the text of an unforeseen error may quote anything, values too.
            return Finding(
                name,
                "fail",
                f"the check itself failed ({type(exc).__name__})",
                "Report this to marketlink's maintainers, with the check's name and the error.",
            )
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        return Finding(
            name,
            "unreachable",
            f"{dependency} unreachable: {message}",
            REACH_FIXES.get(dependency, "Bring the dependency back, then run doctor again."),
        )


def _record(report: Report, finding: Finding) -> None:
    report.add(check=finding.check, status=finding.status, detail=finding.detail, fix=finding.fix)
    report.count(finding.status)
    if finding.status == "unreachable":
        report.unreachable(f"{finding.check}: {finding.detail}")
    elif finding.status == "fail":
        report.needs_attention("some checks failed and need a person: see their fix")


def scrubber(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function hiding each of ``secrets`` where it stands as a whole word: a database
    password ``postgres`` is hidden in ``postgres://postgres:postgres@db``, and leaves the word
    ``postgresql`` whole. Longer secrets are tried first, so one that contains another is
    hidden whole."""
    ordered = sorted(set(secrets), key=len, reverse=True)
    if not ordered:
        return lambda text: text
    pattern = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, ordered))})(?!\w)")
    return lambda text: pattern.sub(HIDDEN, text)


def _scrubbed(finding: Finding, scrub: Callable[[str], str]) -> Finding:
    fix = None if finding.fix is None else scrub(finding.fix)
    return Finding(finding.check, finding.status, scrub(finding.detail), fix)
