"""aospmdm token replace / revoke / qr / export: a profile's enrollment token and the QR code
(or JSON) that carries it. PROFILE is a profile's name or its id."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from aospmdm.cli.common import DataDir, fail, operator_session, settings_for
from aospmdm.cli.profile import ProfileArg, check_days, find, token_state
from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.errors import Conflict
from aospmdm.enrollment import provisioning, service
from aospmdm.enrollment.api import export_body
from aospmdm.tenant import access

app = typer.Typer(
    no_args_is_help=True,
    help="Enrollment tokens: replace, revoke, and the QR code or JSON that enrolls devices.",
)

_QR_KINDS = {".png": provisioning.qr_png, ".svg": provisioning.qr_svg}


@app.command("replace")
def replace(
    profile: ProfileArg,
    days: Annotated[
        int, typer.Option("--days", help="The new token is valid this many days (1-90).")
    ],
    data_dir: DataDir = None,
) -> None:
    """Issue a new token; the previous QR code stops enrolling at once.

    Devices already enrolled are not affected."""
    check_days(days)
    settings = settings_for(data_dir)
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        found = find(session, profile)
        token = service.create_token(session, settings, actor, found.id, days * 86400)
        typer.echo(
            f"new token for profile {found.display_name}: {token.value}, expires "
            f"{clock.iso(token.expires_at)}"
        )
        typer.echo("the previous token and its QR code no longer enroll devices")


@app.command("revoke")
def revoke(profile: ProfileArg, data_dir: DataDir = None) -> None:
    """Expire the profile's token now, e.g. when its QR code leaked.

    Devices already enrolled are not affected."""
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        found = find(session, profile)
        token = service.current_tokens(session, [found]).get(found.id)
        was_active = service.token_is_active(token)
        service.revoke_token(session, actor, found.id)
        if was_active:
            typer.echo(f"revoked the token of profile {found.display_name}")
        else:
            typer.echo(
                f"profile {found.display_name} had no active token ({token_state(token)}); "
                "nothing to revoke"
            )


def _provisioning(data_dir: Path | None, settings: Settings, profile: str) -> service.Provisioning:
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        found = find(session, profile)
        try:
            return service.active_provisioning(session, settings, actor, found.id)
        except Conflict as exc:
            if exc.code != "noActiveToken":
                raise
            fail(f"{exc.message} With the CLI: aospmdm token replace {profile!r} --days N")


def _warn_public_url(settings: Settings) -> None:
    # Without it, the QR code sends devices to this machine's loopback address.
    if "AOSPMDM_PUBLIC_URL" not in os.environ:
        typer.echo(
            f"note: AOSPMDM_PUBLIC_URL is not set; devices are told to use {settings.public_url}",
            err=True,
        )


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read: it holds a live enrollment secret and the
    Wi-Fi key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # also when the file existed with wider permissions
            f.write(data)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")


@app.command("qr")
def qr(
    profile: ProfileArg,
    out: Annotated[
        Path, typer.Option("--out", help="The image file: .png or .svg.", show_default=False)
    ],
    data_dir: DataDir = None,
) -> None:
    """Save the QR code to scan at device setup. It carries the Wi-Fi key in plain text."""
    render = _QR_KINDS.get(out.suffix.lower())
    if render is None:
        fail(f"--out must end in .png or .svg (the image format); got '{out}'.")
    settings = settings_for(data_dir)
    prov = _provisioning(data_dir, settings, profile)
    _write_private(out, render(prov.text))
    _warn_public_url(settings)
    typer.echo(
        f"wrote the QR code to {out} (token expires {clock.iso(prov.expires_at)}); it carries "
        "the Wi-Fi credentials in plain text"
    )


@app.command("export")
def export(
    profile: ProfileArg,
    out: Annotated[
        Path,
        typer.Option("--out", help="The JSON file, or - for standard output.", show_default=False),
    ],
    data_dir: DataDir = None,
) -> None:
    """Export the provisioning JSON for manufacturer tools.

    The file is {"qrCodeContent": <payload>, "expirationDate": <ISO time>}, as the API's
    export. It carries the Wi-Fi key in plain text."""
    settings = settings_for(data_dir)
    prov = _provisioning(data_dir, settings, profile)
    text = json.dumps(export_body(prov), indent=2, ensure_ascii=False) + "\n"
    _warn_public_url(settings)
    if str(out) == "-":
        sys.stdout.write(text)
        return
    _write_private(out, text.encode())
    typer.echo(f"wrote {out} (token expires {clock.iso(prov.expires_at)})")
