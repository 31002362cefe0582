"""Inputs of the users API: Graph's user (the properties a shared-device worker needs)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from aospmdm.core.schemas import READ_ONLY, GraphInput

Upn = Annotated[str, StringConstraints(min_length=1, max_length=254)]
DisplayName = Annotated[str, StringConstraints(max_length=256)]
Password = Annotated[str, StringConstraints(max_length=256)]

USER_READ_ONLY = READ_ONLY | {"source", "externalId", "userType"}


class PasswordProfile(GraphInput):
    odata_type = "#microsoft.graph.passwordProfile"

    password: Password
    # Graph's flags, accepted for scripts that send them; a shared-device worker has no
    # place to change a password, so neither applies.
    force_change_password_next_sign_in: bool | None = None
    force_change_password_next_sign_in_with_mfa: bool | None = None


class UserCreate(GraphInput):
    odata_type = "#microsoft.graph.user"
    read_only = USER_READ_ONLY

    user_principal_name: Upn
    display_name: DisplayName
    account_enabled: bool = True
    password_profile: PasswordProfile
    # Graph requires it on create; the directory has no mailboxes, so it is accepted and
    # not kept.
    mail_nickname: Annotated[str, StringConstraints(max_length=64)] | None = None


class UserUpdate(GraphInput):
    odata_type = "#microsoft.graph.user"
    read_only = USER_READ_ONLY

    user_principal_name: Upn | None = None
    display_name: DisplayName | None = None
    account_enabled: bool | None = None
    password_profile: PasswordProfile | None = None
    mail_nickname: Annotated[str, StringConstraints(max_length=64)] | None = None
