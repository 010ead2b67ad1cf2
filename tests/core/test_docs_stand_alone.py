"""The documentation stands on its own: someone with only the repository can follow every page.
So no page sends its reader to a design file, an issue or a place outside the repository that
they cannot open: what they need from it belongs in ``docs/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The pages a user reads: the README, the changelog, the benchmark's page that docs/ links to,
# and every page of docs/.
PAGES = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "bench" / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
]

# Each pattern names one kind of pointer a reader cannot follow.
POINTERS = {
    "a design file": re.compile(r"\bDESIGN\b|\b(?i:design\.md)\b"),
    "an issue or pull request": re.compile(
        r"\b(?:issues?|pull requests?|PRs?)\s*#?\s*\d+", re.IGNORECASE
    ),
    "a place outside the repository": re.compile(r"\.\./shared\b|\bsteering repo", re.IGNORECASE),
}
# ``#12`` on its own, as trackers number issues. Code is left out, where ``#`` starts a comment
# or a colour; an anchor (``page.md#12``) or an HTML entity (``&#8212;``) is not one either.
BARE_NUMBER = re.compile(r"(?<![\w&#/])#\d+\b")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def pointers_in(text: str) -> list[tuple[int, str]]:
    """What in ``text`` points outside the repository: ``(line number, "<kind>: <words>")``."""
    # Code blanked out, lines kept, so a match's offset still gives its line.
    prose = CODE.sub(lambda code: re.sub(r"[^\n]", " ", code.group(0)), text)
    matches = [
        (kind, match) for kind, pattern in POINTERS.items() for match in pattern.finditer(text)
    ] + [("an issue or pull request", match) for match in BARE_NUMBER.finditer(prose)]
    return sorted(
        (text.count("\n", 0, match.start()) + 1, f"{kind}: {match.group(0)}")
        for kind, match in matches
    )


@pytest.mark.parametrize(
    "text",
    [
        "see DESIGN.md of the other repo",
        "where it differs from DESIGN section 9",
        "on the database lock alone (DESIGN 5)",
        "the team's design.md",
        "the payments reshaping, issue 8",
        "as issue #8 asks",
        "(issues 8 and 9)",
        "## Fuzzing (issue 11, part 3)",
        "fixed in #12.",
        "(see #12)",
        "PR 31 did it",
        "`python3 ../shared/tools/layers.py` checks it",
        "lives in the steering repo",
    ],
)
def test_a_pointer_outside_the_repository_is_found(text):
    assert pointers_in(text), text


@pytest.mark.parametrize(
    "text",
    [
        "a conflict answers HTTP 409",
        "see section 3 of this page",
        "the token was issued at login, and a design decision",
        "an em dash &#8212; in HTML",
        "the [retry section](orders.md#12) of Orders",
        "```bash\ncurl ... # 1 request\necho '#2'\n```",
        "the colour `#112233` in a template",
        "## 1. Headings with numbers",
        "Events may arrive late, twice or out of order (item 3 of the list above).",
    ],
)
def test_our_own_numbers_are_not_taken_for_pointers(text):
    assert pointers_in(text) == []


def test_readme_changelog_and_docs_point_at_nothing_outside_the_repository():
    assert len(PAGES) > 10
    found = [
        f"{page.relative_to(ROOT)}:{line}: {pointer}"
        for page in PAGES
        for line, pointer in pointers_in(page.read_text())
    ]
    assert found == []
