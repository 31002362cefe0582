"""The check-in is the hot path: count its SQL statements so N+1s cannot creep in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from aospmdm.core import clock
from tests.conftest import Env
from tests.sync.device import Device, secret_of

# BEGIN, the device by id, the nonce insert, the one UPDATE, then the policy work: the
# policies assigned to the device, its policy states and the tenant's compliance settings;
# then its open commands, then its app work (the catalog, its assignments, inventory and
# install states in one query). COMMIT is not a cursor call.
NO_CHANGE_CHECK_IN_STATEMENTS = 9


@contextmanager
def counted(env: Env) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = env.app.state.engine

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split()[0].upper() + " " + statement[:60])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_check_in_that_changes_nothing_costs_a_fixed_number_of_statements(env: Env) -> None:
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    from aospmdm.tenant import access, service

    with env.db() as s:
        service.set_license_count(s, access.cli_actor(), 5)
    expires = (clock.now() + timedelta(days=1)).isoformat()
    p = env.call(
        "POST",
        "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles",
        json={"displayName": "hot", "wifiSsid": "s", "tokenExpirationDateTime": expires},
    ).json()
    dev = Device(env.client)
    assert dev.enroll(secret_of(p)).status_code == 201
    assert dev.checkin().status_code == 200
    with counted(env) as statements:
        assert dev.checkin().status_code == 200
    begins = [s for s in statements if s.startswith("BEGIN")]
    others = [s for s in statements if not s.startswith("BEGIN")]
    assert len(begins) <= 1
    assert len(others) == NO_CHANGE_CHECK_IN_STATEMENTS - 1, statements
