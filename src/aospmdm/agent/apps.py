"""What the simulated device does with the app work a check-in brings (docs/protocol.md):
install or update an app from the catalog, or remove one, under Android's rules, and the
agent's own update, which closes the agent and is applied when it starts again.

Pure of the network: ``handle`` answers what needs no download and names the work to
download; ``client.py`` downloads each APK into a ``Sink`` (which checks its size and
SHA-256) and hands the result to ``install``. Each result goes to /device/v1/results under
the work's id. A failure is only reported: the server sends the work again after a backoff,
so the agent never retries on its own.

Android's rules, as the simulated package installer applies them:

- an app is never downgraded (a higher versionCode installed: ``APP_DOWNGRADE``);
- an update must be signed with the certificate of the installed app
  (``APP_SIGNATURE_MISMATCH``), as recorded when the device installed it; an unsigned APK is
  refused (``APP_INSTALL_FAILED``);
- the app's minSdk may not be above the device's API level (``APP_SDK_TOO_LOW``);
- the same version already installed is done at once, without a download;
- system apps and the agent itself cannot be removed (``APP_UNINSTALL_FAILED``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aospmdm import protocol as p

from .device import SYSTEM_APPS, Device, PendingSelfUpdate, sdk_level

AGENT_PACKAGE = "org.aospmdm.agent"
DOWNLOADS_DIR = "downloads"
# App work handled from one answer; the rest comes again with the next check-in.
MAX_APP_WORK = 50
SYSTEM_PACKAGES = frozenset(a.package_name for a in SYSTEM_APPS)
CHUNK = 1 << 16


class AppFailure(Exception):
    """App work that failed: an Intune-like error code (``protocol.APP_*``) and why."""

    def __init__(self, code: int, message: str = ""):
        self.code = code
        self.message = (message or p.APP_ERRORS.get(code, ""))[:256]
        super().__init__(self.message)


@dataclass(frozen=True)
class Download:
    """A downloaded APK whose size and SHA-256 match the catalog's."""

    sha256: str
    size: int
    path: Path | None  # kept in the state directory; None: it was held in memory


def is_app_work(command_id: str) -> bool:
    return command_id.startswith("app:")


def agent_package(device: Device) -> str:
    return device.state.agent_package or AGENT_PACKAGE


def _result(work: p.AppWork, status: str, message: str = "") -> p.CommandResult:
    return p.CommandResult.model_validate(
        {"commandId": work.id, "status": status, "message": message[:256]}
    )


def _failed(work: p.AppWork, failure: AppFailure) -> p.CommandResult:
    return p.CommandResult(
        command_id=work.id, status="failed", message=failure.message, error_code=failure.code
    )


def _cert(text: str | None) -> str | None:
    """A certificate digest as hex without separators, lower case."""
    return None if text is None else text.replace(":", "").strip().lower()


def handle(
    device: Device, works: Sequence[p.AppWork]
) -> tuple[list[p.CommandResult], list[p.AppWork]]:
    """The results of the work that needs no download, and the installs to download (each
    id once). Nothing is done while a wipe or the agent's own update is pending: the device
    is about to reset or the agent to close."""
    state = device.state
    if state.pending_wipe is not None or state.pending_self_update is not None:
        return [], []
    results: list[p.CommandResult] = []
    downloads: list[p.AppWork] = []
    seen: set[str] = set()
    answerable = [w for w in works if 0 < len(w.id) <= 64]
    for work in answerable[:MAX_APP_WORK]:
        if work.id in seen:
            continue
        seen.add(work.id)
        if work.type == "uninstall":
            results.append(uninstall(device, work))
        elif work.type == "install":
            try:
                done = check(device, work)
            except AppFailure as failure:
                results.append(_failed(work, failure))
                continue
            if done:
                results.append(_result(work, "done", "This version is installed."))
            else:
                downloads.append(work)
        else:
            message = f"This agent does not know the app work {work.type!r}."
            results.append(_result(work, "notSupported", message))
    # The agent's own update last: it closes the agent.
    own = agent_package(device)
    downloads.sort(key=lambda w: w.package_name == own)
    return results, downloads


def check(device: Device, work: p.AppWork) -> bool:
    """Whether Android would install ``work`` on the device: True when this version is
    installed already (nothing to do), False when it may be installed; AppFailure when the
    installer would refuse it."""
    installed = _installed(device, work.package_name)
    if installed is not None and installed.version_code > work.version_code:
        raise AppFailure(
            p.APP_DOWNGRADE,
            f"Version {installed.version_name} ({installed.version_code}) is installed; "
            f"Android does not downgrade it to {work.version_code}.",
        )
    if installed is not None and installed.version_code == work.version_code:
        return True
    cert = _cert(work.signing_cert_sha256)
    if cert is None:
        raise AppFailure(p.APP_INSTALL_FAILED, "The APK is not signed: Android refuses it.")
    signer = device.state.app_signers.get(work.package_name)
    if installed is not None and signer is not None and signer != cert:
        raise AppFailure(p.APP_SIGNATURE_MISMATCH)
    sdk = sdk_level(device.hardware)
    if work.min_sdk is not None and work.min_sdk > sdk:
        raise AppFailure(
            p.APP_SDK_TOO_LOW, f"The app needs API level {work.min_sdk}; the device has {sdk}."
        )
    return False


def install(
    device: Device, work: p.AppWork, download: Download | AppFailure
) -> p.CommandResult | None:
    """Install a downloaded APK (checked again: the device may have changed meanwhile). The
    agent's own update is only kept as pending (``state.pending_self_update``): it is applied
    when the agent starts again, and reported then; None is returned for it."""
    if isinstance(download, AppFailure):
        return _failed(work, download)
    try:
        done = check(device, work)
    except AppFailure as failure:
        _discard(download)
        return _failed(work, failure)
    if done:
        _discard(download)
        return _result(work, "done", "This version is installed.")
    if work.package_name == agent_package(device):
        kept = None if download.path is None else download.path.name
        device.state.pending_self_update = PendingSelfUpdate(work=work, file=kept)
        return None
    _put(device, work, download.size)
    _discard(download)
    return _result(work, "done")


def apply_self_update(device: Device) -> p.CommandResult | None:
    """At start-up: install the agent's own update left pending when it closed, report its
    version from now on, and owe the server its result. None when there was none."""
    state = device.state
    pending = state.pending_self_update
    if pending is None:
        return None
    work = pending.work
    path = None
    if pending.file is not None and device.state_dir is not None:
        path = device.state_dir / DOWNLOADS_DIR / pending.file
    size = work.size or (path.stat().st_size if path is not None and path.is_file() else 0)
    try:
        done = check(device, work)
    except AppFailure as failure:
        result = _failed(work, failure)
    else:
        if not done:
            _put(device, work, size)
        state.agent_version = work.version_name or state.agent_version
        result = _result(work, "done", f"The agent updated itself to {work.version_name}.")
    state.owed_app_results = [
        *(r for r in state.owed_app_results if r.command_id != work.id),
        result,
    ][-100:]
    state.pending_self_update = None
    device.hardware.agent_restarts += 1
    # The state first: a file left behind is overwritten by the next download.
    device.save()
    if path is not None:
        path.unlink(missing_ok=True)
    return result


def uninstall(device: Device, work: p.AppWork) -> p.CommandResult:
    package = work.package_name
    if _installed(device, package) is None:
        return _result(work, "done", "The app is not installed.")
    if package in SYSTEM_PACKAGES or package == agent_package(device):
        what = "the agent itself" if package == agent_package(device) else "a system app"
        return _failed(work, AppFailure(p.APP_UNINSTALL_FAILED, f"{package} is {what}: it stays."))
    state = device.state
    state.installed_apps = [a for a in state.installed_apps if a.package_name != package]
    state.app_signers = {k: v for k, v in state.app_signers.items() if k != package}
    return _result(work, "done")


def _installed(device: Device, package: str) -> p.InstalledApp | None:
    return next((a for a in device.state.installed_apps if a.package_name == package), None)


def _put(device: Device, work: p.AppWork, size: int) -> None:
    state = device.state
    installed = _installed(device, work.package_name)
    app = p.InstalledApp(
        package_name=work.package_name,
        version_name=work.version_name,
        version_code=work.version_code,
        display_name=work.display_name or (installed.display_name if installed else ""),
        size_in_bytes=max(size, 0),
    )
    apps = [a for a in state.installed_apps if a.package_name != work.package_name]
    state.installed_apps = [*apps, app]
    cert = _cert(work.signing_cert_sha256)
    if cert is not None:
        state.app_signers = {**state.app_signers, work.package_name: cert}


def _discard(download: Download) -> None:
    if download.path is not None:
        download.path.unlink(missing_ok=True)


class Sink:
    """Where one APK download goes: a file in the device's state directory (a download cut
    short is resumed with ``Range`` next time), or memory for a device without one. It
    hashes what it receives and refuses more than the catalog's size."""

    def __init__(self, device: Device, work: p.AppWork):
        if not work.download_url or not work.sha256:
            raise AppFailure(p.APP_DOWNLOAD_FAILED, "The work names no file to download.")
        self.work = work
        self.expected = work.sha256.lower()
        self.size = work.size
        self.hash = hashlib.sha256()
        self.received = 0
        self.path: Path | None = None
        self.part: Path | None = None
        self._file: BinaryIO | None = None
        self._buffer: list[bytes] = []
        if device.state_dir is not None:
            directory = device.state_dir / DOWNLOADS_DIR
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise AppFailure(p.APP_DOWNLOAD_FAILED, f"No room for the download: {exc}") from exc
            name = f"{self.expected[:64]}.apk"
            self.path = directory / name
            self.part = directory / (name + ".part")

    def range_headers(self) -> dict[str, str]:
        """``Range`` to resume a download an earlier attempt cut short."""
        if self.part is None or not self.part.is_file():
            return {}
        have = self.part.stat().st_size
        if have == 0 or (self.size is not None and have >= self.size):
            self.part.unlink(missing_ok=True)
            return {}
        return {"Range": f"bytes={have}-"}

    def start(self, status: int) -> None:
        """The answer's status: 206 appends to the part kept, 200 starts over."""
        if status not in (200, 206):
            raise AppFailure(p.APP_DOWNLOAD_FAILED, f"The server answered {status}.")
        self.hash = hashlib.sha256()
        self.received = 0
        self._buffer = []
        if self.part is None:
            return
        if status == 206 and self.part.is_file():
            with self.part.open("rb") as kept:
                for chunk in iter(lambda: kept.read(CHUNK), b""):
                    self.hash.update(chunk)
                    self.received += len(chunk)
            append = True
        else:
            append = False
        try:
            self._file = self.part.open("ab") if append else self.part.open("wb")
        except OSError as exc:
            raise AppFailure(p.APP_DOWNLOAD_FAILED, f"Cannot write the download: {exc}") from exc

    def write(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.size is not None and self.received > self.size:
            self.abort(keep=False)
            raise AppFailure(
                p.APP_HASH_MISMATCH, f"The file is larger than the catalog's {self.size} bytes."
            )
        self.hash.update(chunk)
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._buffer.append(chunk)

    def abort(self, keep: bool = True) -> None:
        """Stop: a file cut short is kept to resume, unless ``keep`` is False."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = []
        if not keep and self.part is not None:
            self.part.unlink(missing_ok=True)

    def finish(self) -> Download:
        """The download, if its size and SHA-256 are the catalog's (AppFailure otherwise:
        the file is thrown away)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        self.abort()
        digest = self.hash.hexdigest()
        if (self.size is not None and self.received != self.size) or digest != self.expected:
            if self.part is not None:
                self.part.unlink(missing_ok=True)
            raise AppFailure(
                p.APP_HASH_MISMATCH,
                f"Got {self.received} bytes with SHA-256 {digest}; the catalog has "
                f"{self.size} bytes with SHA-256 {self.expected}.",
            )
        if self.part is None or self.path is None:
            return Download(digest, self.received, None)
        os.replace(self.part, self.path)
        return Download(digest, self.received, self.path)
