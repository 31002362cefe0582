"""Shared plumbing that knows no feature: config, storage, security, errors, OData, clock."""
