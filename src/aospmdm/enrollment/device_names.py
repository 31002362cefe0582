"""Device name templates (SPEC.md §3): at most 63 characters; the tokens {{SERIAL}},
{{SERIALLAST4DIGITS}}, {{DEVICETYPE}}, {{ENROLLMENTDATETIME}} and {{RAND:x}} (x = 1-9);
outside them only letters, digits and hyphens."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from aospmdm.core.errors import BadRequest

MAX_LENGTH = 63
TOKENS = ("SERIAL", "SERIALLAST4DIGITS", "DEVICETYPE", "ENROLLMENTDATETIME")
_PART = re.compile(r"\{\{(.*?)\}\}")
_RAND = re.compile(r"RAND:[1-9]")
_LITERAL = re.compile(r"[A-Za-z0-9-]*")
FIELD = "deviceNameTemplate"


def validate(template: str) -> None:
    if len(template) > MAX_LENGTH:
        raise BadRequest(
            f"The device name template has {len(template)} characters; at most {MAX_LENGTH}.",
            target=FIELD,
        )
    pos = 0
    for m in _PART.finditer(template):
        _literal(template[pos : m.start()], pos)
        token = m.group(1)
        if token not in TOKENS and not _RAND.fullmatch(token):
            raise BadRequest(
                f"'{{{{{token}}}}}' is not a device name token. Use "
                + ", ".join(f"{{{{{t}}}}}" for t in TOKENS)
                + " or {{RAND:x}} with x from 1 to 9.",
                target=FIELD,
            )
        pos = m.end()
    _literal(template[pos:], pos)
    if not template.strip():
        raise BadRequest("The device name template is empty; leave it out instead.", target=FIELD)


def _literal(text: str, offset: int) -> None:
    if _LITERAL.fullmatch(text):
        return
    bad = next(i for i, c in enumerate(text) if not (c.isascii() and (c.isalnum() or c == "-")))
    raise BadRequest(
        f"Character '{text[bad]}' at position {offset + bad} is not allowed in a device name "
        "template: outside its {{TOKENS}} use only letters, digits and hyphens.",
        target=FIELD,
    )


def render(
    template: str | None,
    *,
    serial: str,
    device_type: str,
    enrolled_at: datetime,
    rand: Callable[[int], str],
) -> str:
    """The name of a newly enrolled device: the template with its tokens filled in (keeping
    only letters, digits and hyphens from the device's values), or Intune's default
    ``AndroidAOSP_<date>_<time>`` when the profile has no template."""
    if not template:
        hour = enrolled_at.hour % 12 or 12
        half = "AM" if enrolled_at.hour < 12 else "PM"
        return (
            f"AndroidAOSP_{enrolled_at.month}/{enrolled_at.day}/{enrolled_at.year}_"
            f"{hour}:{enrolled_at.minute:02d} {half}"
        )
    clean_serial = _clean(serial)
    values = {
        "SERIAL": clean_serial,
        "SERIALLAST4DIGITS": clean_serial[-4:],
        "DEVICETYPE": _clean(device_type),
        "ENROLLMENTDATETIME": enrolled_at.strftime("%Y%m%d%H%M%S"),
    }

    def fill(m: re.Match[str]) -> str:
        token = m.group(1)
        if token.startswith("RAND:"):
            return rand(int(token[5:]))
        return values[token]

    return _PART.sub(fill, template)[:MAX_LENGTH] or "AndroidAOSP"


def _clean(text: str) -> str:
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c == "-"))
