"""The tenant: organization, MDM authority, licenses, admins, roles, scope tags, audit log."""
