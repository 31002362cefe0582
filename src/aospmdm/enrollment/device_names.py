"""Device name templates (SPEC.md §3): at most 63 characters; the tokens {{SERIAL}},
{{SERIALLAST4DIGITS}}, {{DEVICETYPE}}, {{ENROLLMENTDATETIME}} and {{RAND:x}} (x = 1-9);
outside them only letters, digits and hyphens."""

from __future__ import annotations

import re

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
