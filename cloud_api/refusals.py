"""`Refused`: a rule of the service said no. One type for the JSON API and the web pages.

The message is an English template with named fields; the API sends it formatted, a page
translates the template first (it is a catalogue msgid) and then fills the fields in, and shows
it next to `field` when the refusal is about one form field.
"""

from __future__ import annotations

from typing import Any

# HTTP status for each kind of refusal; a code not listed is a conflict with the current state.
STATUS = {"not_found": 404, "forbidden": 403, "invalid": 422, "unauthenticated": 401, "locked": 429, "unavailable": 503}


def N_(message: str) -> str:
    """Marks a string for the cabinet catalogue; translated where it is shown."""
    return message


class Refused(Exception):
    def __init__(self, code: str, template: str, *, field: str | None = None, kind: str = "conflict", **params: Any):
        self.code = code
        self.template = template
        self.field = field
        self.kind = kind
        self.params = params
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return self.template.format(**self.params) if self.params else self.template

    @property
    def status(self) -> int:
        return STATUS.get(self.kind, 409)
