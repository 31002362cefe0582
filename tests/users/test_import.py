"""aospmdm user import / list: all-or-nothing CSV import, per-line errors, --update."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from aospmdm.core.security import verify_password
from aospmdm.tenant.models import AuditEvent
from aospmdm.users.models import DirectoryUser
from tests.cli.inprocess import db, ok, refused, run

HEADER = "userPrincipalName,displayName,password\n"


def csv_file(tmp_path: Path, text: str, name: str = "users.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def upns(data: Path) -> list[str]:
    with db(data) as s:
        return sorted(s.scalars(select(DirectoryUser.user_principal_name)))


def test_import_list_and_update(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ok(run(data, "migrate"))
    assert "no users" in ok(run(data, "user", "list"))
    good = csv_file(
        tmp_path,
        "\ufeff" + HEADER + "Ann@Contoso.com,Ann Smith,ann-password\n"
        '\nbob@contoso.com,"Bob, the builder",bob-password\n',
    )
    out = ok(run(data, "user", "import", good))
    assert out.strip() == "imported 2 users: 2 created, 0 updated"
    assert upns(data) == ["ann@contoso.com", "bob@contoso.com"]
    listed = ok(run(data, "user", "list"))
    assert "ann@contoso.com" in listed and "Bob, the builder" in listed and "enabled" in listed
    with db(data) as s:
        audits = s.scalars(select(AuditEvent).where(AuditEvent.category == "User")).all()
        assert len(audits) == 2 and all(a.actor.startswith("cli:") for a in audits)

    # Existing users: refused, naming the line, and nothing changes...
    again = csv_file(
        tmp_path, HEADER + "carl@contoso.com,Carl,carl-password\nann@contoso.com,Ann,new-pass-1\n"
    )
    err = refused(run(data, "user", "import", again))
    assert "line 3" in err and "ann@contoso.com" in err and "--update" in err
    assert upns(data) == ["ann@contoso.com", "bob@contoso.com"]
    # ... unless --update.
    out = ok(run(data, "user", "import", again, "--update"))
    assert out.strip() == "imported 2 users: 1 created, 1 updated"
    with db(data) as s:
        ann = s.scalars(
            select(DirectoryUser).where(DirectoryUser.user_principal_name == "ann@contoso.com")
        ).one()
        assert ann.display_name == "Ann" and verify_password(ann.password_hash, "new-pass-1")


def test_bad_lines_import_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ok(run(data, "migrate"))
    cases = {
        "header": ("upn,name,password\n", "line 1"),
        "upn": (HEADER + "ok@contoso.com,Ok,ok-password\nnot-an-upn,X,x-password\n", "line 3"),
        "password": (HEADER + "ok@contoso.com,Ok,short\n", "line 2"),
        "name": (HEADER + "ok@contoso.com,  ,ok-password\n", "line 2"),
        "long name": (HEADER + "ok@contoso.com," + "N" * 257 + ",ok-password\n", "line 2"),
        "fields": (HEADER + "ok@contoso.com,Ok\n", "line 2"),
        "duplicate": (
            HEADER + "ok@contoso.com,Ok,ok-password\nOK@contoso.com,Ok,ok-password\n",
            "line 3",
        ),
    }
    fields = {
        "upn": "userPrincipalName",
        "password": "password",
        "name": "displayName",
        "long name": "displayName",
        "duplicate": "line 2",
    }
    for name, (text, line) in cases.items():
        err = refused(run(data, "user", "import", csv_file(tmp_path, text, f"{name}.csv")))
        assert line in err, (name, err)
        if name in fields:
            assert fields[name] in err, (name, err)
    assert upns(data) == []
    err = refused(run(data, "user", "import", str(tmp_path / "missing.csv")))
    assert "cannot read" in err
