"""The aospmdm command line: an operator acting on the server's database (no RBAC, audited
as ``cli:<os user>``). One module per noun."""

from __future__ import annotations

import typer

from aospmdm.cli import (
    admin,
    agent,
    apps,
    device,
    group,
    license,
    policy,
    profile,
    scope_tag,
    serve,
    token,
    users,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.command("serve")(serve.serve)
app.command("migrate")(serve.migrate)
app.add_typer(admin.app, name="admin")
app.add_typer(license.app, name="license")
app.add_typer(scope_tag.app, name="scope-tag")
app.add_typer(profile.app, name="profile")
app.add_typer(token.app, name="token")
app.add_typer(group.app, name="group")
app.add_typer(policy.app, name="policy")
app.add_typer(apps.app, name="app")
app.add_typer(device.app, name="device")
app.add_typer(agent.app, name="agent")
app.add_typer(users.app, name="user")
app.command("simulate")(agent.simulate_fleet)


def main() -> None:
    app()
