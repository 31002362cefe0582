"""The logs the agent uploads for the help desk (docs/protocol.md §15): by default a zip of
its status, without secrets, and the log files it keeps in its state directory."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

from . import AgentError
from .device import Device

# Status properties that hold a secret (the device passcode, a session token, a key): left
# out. Properties that only say whether there is one (passcodeSet, preSharedKeySet) stay.
_SECRET = re.compile(r"(passcode|password|token|secret|key)$", re.IGNORECASE)


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not _SECRET.search(k)}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def bundle(device: Device) -> tuple[bytes, str, str]:
    """The default upload: (body, file name, content type) of a zip holding
    ``status.json`` and every ``*.log`` file of the state directory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        status = _without_secrets(device.status())
        archive.writestr("status.json", json.dumps(status, indent=2, ensure_ascii=False))
        if device.state_dir is not None:
            for path in sorted(device.state_dir.glob("*.log")):
                archive.write(path, path.name)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    serial = re.sub(r"[^A-Za-z0-9_-]", "_", device.hardware.serial)
    return buffer.getvalue(), f"aospmdm-agent-{serial}-{stamp}.zip", "application/zip"


def read_file(path: Path) -> tuple[bytes, str, str]:
    """A file to upload as it is: a ``.zip`` as a zip, anything else as UTF-8 text."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise AgentError("badFile", f"cannot read {path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".zip":
        return body, path.name, "application/zip"
    return body, path.name, "text/plain; charset=utf-8"
