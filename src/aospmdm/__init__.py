"""aospmdm: a self-hosted MDM server for corporate-owned, userless Android (AOSP) devices."""

__version__ = "0.1.0"
