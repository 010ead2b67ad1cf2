"""Schema building blocks shared by the apps' ``schemas.py``."""

from __future__ import annotations

from typing import Any, Self

from ninja import Schema
from pydantic import model_validator


class PatchSchema(Schema):
    """A partial update: omitted fields stay as they are, an explicit ``null`` is refused.

    Fields are declared ``X | None = None`` so omission can be told apart (``model_fields_set``),
    but no stored column here is nullable, so a client's ``null`` must be a 400, not a 500.
    """

    @model_validator(mode="after")
    def _refuse_nulls(self) -> Self:
        nulls = [name for name in self.model_fields_set if getattr(self, name) is None]
        if nulls:
            raise ValueError(f"{', '.join(sorted(nulls))} may not be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, ready for a service's ``**changes``."""
        return self.model_dump(exclude_unset=True)
