"""The docs name every permission the code registers, so they cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import aospmdm.server  # noqa: F401  (imports every feature, which registers its permissions)
from aospmdm.core import permissions

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_security_md_lists_every_permission() -> None:
    text = (DOCS / "security.md").read_text()
    for perm in permissions.all_permissions():
        assert f"| `{perm.name}` | {perm.description} |" in text, perm.name
