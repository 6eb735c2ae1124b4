"""Forms validated with the API's pydantic models; errors go next to their field, translated.

A page posts its fields; `validate(Model, form, lang)` returns the model or a dict of
field -> message in the person's language. Service refusals that name a field (`Refused.field`)
are shown the same way through `refusal_errors`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cloud_api.refusals import N_, Refused
from cloud_api.web.i18n import Language

M = TypeVar("M", bound=BaseModel)

MESSAGES = {
    "missing": N_("Fill in this field."),
    "string_too_short": N_("Fill in this field."),
    "string_too_long": N_("Use at most {max_length} characters."),
    "int_parsing": N_("Enter a whole number."),
    "int_type": N_("Enter a whole number."),
    "greater_than_equal": N_("Enter a number of at least {ge}."),
    "greater_than": N_("Enter a number greater than {gt}."),
    "less_than_equal": N_("Enter a number of at most {le}."),
    "string_pattern_mismatch": N_("This value has the wrong form."),
    "date_from_datetime_parsing": N_("Enter a date."),
    "date_parsing": N_("Enter a date."),
    "datetime_from_date_parsing": N_("Enter a date."),
    "literal_error": N_("Choose one of the values offered."),
    "enum": N_("Choose one of the values offered."),
}
FALLBACK = N_("This value is not valid.")


def validate(model: type[M], form: dict[str, Any], lang: Language) -> tuple[M | None, dict[str, str]]:
    # Passwords are taken as typed: a space may be part of one.
    data = {
        key: (value.strip() if isinstance(value, str) and "password" not in key else value)
        for key, value in form.items()
    }
    data = {key: value for key, value in data.items() if value != ""}
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        return None, errors_of(exc, lang)


def errors_of(exc: ValidationError, lang: Language) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        where = str(error["loc"][0]) if error.get("loc") else "__all__"
        if where in errors:
            continue
        template = MESSAGES.get(error["type"], FALLBACK)
        context = {
            key: value for key, value in (error.get("ctx") or {}).items() if isinstance(value, int | float | str)
        }
        if error["type"] == "value_error" and isinstance((error.get("ctx") or {}).get("error"), Refused):
            refused = error["ctx"]["error"]
            errors[where] = translate(refused, lang)
            continue
        try:
            errors[where] = lang.gettext(template).format(**context)
        except (KeyError, IndexError):
            errors[where] = lang.gettext(FALLBACK)
    return errors


def translate(refused: Refused, lang: Language) -> str:
    text = lang.gettext(refused.template)
    try:
        return text.format(**refused.params) if refused.params else text
    except (KeyError, IndexError):
        return refused.message


def refusal_errors(refused: Refused, lang: Language) -> dict[str, str]:
    return {refused.field or "__all__": translate(refused, lang)}
