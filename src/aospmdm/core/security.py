"""Secrets: password hashing (argon2), high-entropy tokens (CSPRNG, stored as SHA-256)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, checked when the account does not exist, so that a
    sign-in for an unknown email costs as long as one for a known email (no probing by
    timing). Made on first use: the CLI should not pay for it at start."""
    return _hasher.hash(secrets.token_hex(16))


MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def new_secret(prefix: str = "") -> str:
    """A new secret with 256 bits from the OS CSPRNG, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def new_password() -> str:
    """A random password a person can type: 20 URL-safe characters (120 bits)."""
    return secrets.token_urlsafe(15)


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret: enough, since it cannot be guessed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _fernet(instance_key: bytes) -> Fernet:
    # A key of its own for encryption, derived from the instance key, so that signing cookies
    # and encrypting secrets never share one key.
    derived = hashlib.sha256(b"aospmdm.encryption\x00" + instance_key).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(instance_key: bytes, plain: str) -> str:
    """Encrypt what must be shown again (the enrollment secret inside a QR code)."""
    return _fernet(instance_key).encrypt(plain.encode()).decode()


def decrypt(instance_key: bytes, token: str) -> str:
    return _fernet(instance_key).decrypt(token.encode()).decode()
