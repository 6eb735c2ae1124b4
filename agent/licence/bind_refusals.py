"""What the cloud's refusal of an entered licence key means for the technician at the terminal.

The cloud refuses a bind request in its down/ack with a stable reason code; the outbox keeps
only that code (not the cloud's message), so the advice for each code the cloud documents
(docs/cloud-api.md, "Licences") lives here, and `kassactl licence` shows it next to the code.
"""

from __future__ import annotations

_ADVICE = {
    "licence.key_invalid": "The key has a typo. Check it and enter it again.",
    "licence.key_unknown": "No licence has this key. Check it with your partner.",
    "licence.not_assigned": "This licence has not been handed out yet. Ask your partner.",
    "licence.revoked": "This licence was revoked. Ask your partner.",
    "licence.expired": "This licence has run out. Ask your partner.",
    "licence.other_company": "This licence belongs to another company. Ask the company that holds it to release "
    "it to the partner, or ask your partner for a licence of your own.",
    "licence.returning": "The company that held this licence is giving it back to the partner. Enter it again "
    "once its old terminal has let go (at once if that terminal is online, otherwise when "
    "its lease has run out).",
    "licence.move_rate_limited": "This licence was moved too often in the last hour. Enter it again later.",
    "licence.wrong_device_key": "The cloud knows this terminal by another key. Ask support to check the terminal.",
    "licence.device_unknown": "The cloud does not know this terminal. Pair it with the cloud first.",
    "licence.unavailable": "The cloud cannot issue licences right now. Enter the key again later.",
}
UNKNOWN = "The cloud refused the key. Ask your partner, quoting the code."


def bind_refusal_advice(code: str) -> str:
    return _ADVICE.get(code, UNKNOWN)
