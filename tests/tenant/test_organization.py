"""Organization, MDM authority and device licenses (SPEC.md §1)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from aospmdm.core.errors import BadRequest, Conflict
from aospmdm.tenant import access, service
from aospmdm.tenant.models import Organization
from tests.conftest import Env


def test_health_needs_no_token(env: Env) -> None:
    r = env.call("GET", "/healthz", token=None)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_openapi_document_is_served(env: Env) -> None:
    r = env.call("GET", "/openapi.json", token=None)
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/beta/organization/{org_id}/setMobileDeviceManagementAuthority" in paths
    assert "/beta/deviceManagement/roleScopeTags" in paths


def test_mdm_authority_is_set_once_and_repeating_is_a_no_op(env: Env) -> None:
    org = env.call("GET", "/beta/organization").json()["value"][0]
    assert org["mobileDeviceManagementAuthority"] == "unknown"
    with env.db() as s:
        assert not service.mdm_authority_is_set(s)
    path = f"/beta/organization/{org['id']}/setMobileDeviceManagementAuthority"
    assert env.call("POST", path).status_code == 204
    set_at = env.call("GET", f"/beta/organization/{org['id']}").json()
    assert set_at["mobileDeviceManagementAuthority"] == "intune"
    assert env.call("POST", path).status_code == 204
    events = env.audit(**{"$filter": "activity eq 'Set MDM authority'"})
    assert len(events) == 1, "the repeat changed nothing, so it records nothing"
    assert events[0]["actor"]["userPrincipalName"] == "root@example.com"
    with env.db() as s:
        assert service.mdm_authority_is_set(s)


def test_help_desk_cannot_set_the_authority(env: Env) -> None:
    helpdesk = env.admin("Help Desk Operator")
    org_id = env.org_id()
    r = env.call(
        "POST", f"/beta/organization/{org_id}/setMobileDeviceManagementAuthority", token=helpdesk
    )
    assert r.status_code == 403
    assert "organization.write" in r.json()["error"]["message"]
    assert (
        env.call("GET", f"/beta/organization/{org_id}").json()["mobileDeviceManagementAuthority"]
        == "unknown"
    )
    refused = env.audit(**{"$filter": "activityOperationType eq 'Refused'"})
    assert any("setMobileDeviceManagementAuthority" in e["activity"] for e in refused)


def test_unknown_organization_id_is_404(env: Env) -> None:
    r = env.call("POST", "/beta/organization/nope/setMobileDeviceManagementAuthority")
    assert r.status_code == 404
    assert "nope" in r.json()["error"]["message"]


def test_rename_organization(env: Env) -> None:
    org_id = env.org_id()
    r = env.call("PATCH", f"/beta/organization/{org_id}", json={"displayName": "Contoso Plant 1"})
    assert r.status_code == 204
    assert env.call("GET", "/beta/organization").json()["value"][0]["displayName"] == (
        "Contoso Plant 1"
    )
    r = env.call("PATCH", f"/beta/organization/{org_id}", json={"displayName": ""})
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "displayName"


def test_subscribed_skus_show_seats_and_use(env: Env) -> None:
    with env.db() as s:
        service.set_license_count(s, access.cli_actor(), 25)
        s.scalars(select(Organization)).one().licenses_consumed = 3
    sku = env.call("GET", "/beta/subscribedSkus").json()["value"][0]
    assert sku["prepaidUnits"]["enabled"] == 25
    assert sku["consumedUnits"] == 3
    assert sku["skuPartNumber"] == "AOSPMDM_DEVICE"


def test_license_count_cannot_drop_below_use(env: Env) -> None:
    with env.db() as s:
        service.set_license_count(s, access.cli_actor(), 5)
        s.scalars(select(Organization)).one().licenses_consumed = 4
    with pytest.raises(Conflict), env.db() as s:
        service.set_license_count(s, access.cli_actor(), 3)
    with pytest.raises(BadRequest), env.db() as s:
        service.set_license_count(s, access.cli_actor(), -1)
    sku = env.call("GET", "/beta/subscribedSkus").json()["value"][0]
    assert sku["prepaidUnits"]["enabled"] == 5
