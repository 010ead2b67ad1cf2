"""What text a client may send: names are one line, long texts may break lines. Nothing else.

A name travels further than the row it is stored in: into email headers (a line break in a
service name made the invoice subject raise "Header values may not contain linefeed" at every
send), admin pages, CSV exports, terminals and logs. So input schemas refuse control characters
(Unicode category Cc) and the Unicode line and paragraph separators in names, tab included: no
name needs one and it renders differently everywhere. Multi-line texts (an address, a
description) keep line breaks and tabs but refuse the other control characters.

Use the markers in ``Annotated`` after the field's ``StringConstraints``:
``Annotated[str, StringConstraints(...), SingleLine]``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from pydantic import AfterValidator, ValidationInfo

_SEPARATORS = {"\u2028": "a line separator", "\u2029": "a paragraph separator"}
_NAMED = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}
_LAYOUT = frozenset("\n\r\t")


def _describe(char: str) -> str:
    name = _NAMED.get(char) or _SEPARATORS.get(char) or "a control character"
    return f"{name} (U+{ord(char):04X})"


def _refusing(allowed: frozenset[str], rule: str) -> Callable[[str, ValidationInfo], str]:
    def check(value: str, info: ValidationInfo) -> str:
        for char in value:
            if char in allowed:
                continue
            if char in _SEPARATORS or unicodedata.category(char) == "Cc":
                raise ValueError(f"{info.field_name} {rule}; it contains {_describe(char)}")
        return value

    return check


SingleLine = AfterValidator(
    _refusing(frozenset(), "must be a single line without control characters")
)
MultiLine = AfterValidator(
    _refusing(
        _LAYOUT | _SEPARATORS.keys(),
        "must not contain control characters other than line breaks and tabs",
    )
)
