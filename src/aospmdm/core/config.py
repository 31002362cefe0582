"""Settings, from the environment (prefix ``AOSPMDM_``) with the data directory as the anchor."""

from __future__ import annotations

import contextlib
import os
import tempfile
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AOSPMDM_", extra="ignore")

    data_dir: Path = Path("data")
    # SQLite under the data directory unless a URL is given (postgresql+psycopg://… to scale).
    database_url: str | None = None
    # The URL devices are given.
    public_url: str = "http://127.0.0.1:8000"
    # Overrides the key file in the data directory; every worker of one site needs the same.
    secret_key: str | None = Field(default=None, min_length=32)
    # Console sessions end after this much inactivity.
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Requests with a larger body are refused with 413 before they are read.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # APK uploads (the app catalog) may be this large; they are stored under data_dir/apps.
    max_apk_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    # Device log uploads (POST /device/v1/logs) may be this large; kept under data_dir/logs.
    max_log_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Uploaded logs are deleted after this many days; the record stays, marked expired, as
    # long again, so the help desk can tell that an incident existed.
    log_retention_days: int = Field(default=30, ge=1, le=3650)
    # A failed app install is tried again after this long, doubling per failure (up to 8 h).
    app_retry_seconds: float = Field(default=300, ge=0)
    # Sign-in throttling: failures counted over the window, per account and per address.
    signin_window_minutes: int = Field(default=15, ge=1)
    signin_max_failures_per_account: int = Field(default=5, ge=1)
    signin_max_failures_per_address: int = Field(default=20, ge=1)
    # A worker's sign-in on a shared device lasts this long (the SSO token's lifetime);
    # failed worker sign-ins are throttled with the window and limits above (per user
    # principal name as per account, per device as per address).
    session_hours: int = Field(default=12, ge=1, le=24 * 30)

    # The device agent that QR provisioning installs (Android device-owner extras).
    agent_component: str = "org.aospmdm.agent/.AdminReceiver"
    # Where devices download the agent APK; default: this server's agent download.
    agent_apk_url: str | None = None
    # SHA-256 (hex) of the agent APK's signing certificate. The default is a placeholder: no
    # signed agent APK ships with aospmdm yet, so set the checksum of the agent you deploy,
    # or devices refuse the download during provisioning.
    agent_signing_cert_sha256: str = Field(
        default="7b4d3f6c0a1e9b2d5c8f4e7a1b3d6c9e2f5a8b1c4d7e0f3a6b9c2d5e8f1a4b7c",
        pattern=r"^[0-9a-fA-F]{64}$",
    )
    # Some Android builds refuse the checksum with base64 padding, others want it.
    agent_checksum_padding: bool = False

    # Agents older than this cannot enroll or check in: they are told to update (426).
    minimum_agent_version: str = Field(default="24.7.0", pattern=r"^\d+\.\d+\.\d+$")
    # The required apps every device installs and opens at enrollment (until the app catalog
    # takes them over): package, version name and version code of each.
    agent_package: str = "org.aospmdm.agent"
    agent_version_name: str = "24.9.0"
    agent_version_code: int = 240900
    authenticator_package: str = "org.aospmdm.authenticator"
    authenticator_version_name: str = "6.2409.1"
    authenticator_version_code: int = 62409010
    portal_package: str = "org.aospmdm.portal"
    portal_version_name: str = "5.0.6300"
    portal_version_code: int = 5006300
    # Where devices download the authenticator and the portal; default: this server.
    authenticator_apk_url: str | None = None
    portal_apk_url: str | None = None

    # How long GET /device/v1/wait holds a device's request when it has no work (seconds).
    wait_seconds: float = Field(default=55, gt=0, le=300)
    # Compliance notifications go out by SMTP when a host is set; else they wait in the outbox.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "aospmdm@localhost"
    smtp_starttls: bool = False
    # Implicit TLS from the first byte (SMTPS, usually port 465) instead of STARTTLS.
    smtp_ssl: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None

    @property
    def resolved_agent_apk_url(self) -> str:
        return self.agent_apk_url or f"{self.public_url.rstrip('/')}/device/v1/agent.apk"

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aospmdm.db').resolve()}"

    @cached_property
    def instance_key(self) -> bytes:
        """The instance key: signs console cookies and (later) encrypts what must be shown again.

        It is created once, with 256 bits from the OS CSPRNG, in the data directory, readable by
        the owner only.
        """
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "instance.key"
        if not path.exists():
            # Written whole to a private temporary file, then linked into place: processes
            # starting together on one data directory all end up reading the same full key.
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.data_dir, prefix=".instance.key.")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(os.urandom(32).hex())
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        return path.read_text().strip().encode()
