"""The reference device agent and the fleet simulator: the client side of the device protocol
(docs/protocol.md) on a simulated AOSP device.

It imports ``aospmdm.protocol`` and libraries only, never server code, so that it can ship as
its own package; modules inside it import each other relatively for the same reason.
"""

from __future__ import annotations

DEFAULT_AGENT_VERSION = "24.9.0"


class AgentError(Exception):
    """Something the agent cannot get past: a refusal from the server (``status`` is the HTTP
    status and ``code`` the ``error.code`` of the answer), an unreachable server, or an
    unusable QR code or state directory (``status`` None)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        details: dict[str, object] | None = None,
    ):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
