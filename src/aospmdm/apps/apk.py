"""What an uploaded APK says about itself: its package, version, minimum SDK, label and the
certificate it is signed with.

Nothing here verifies a signature. The device does that when it installs the APK, and refuses
one whose signatures do not check out or that is signed by another key than the installed
version. The server only reports the certificate the APK names, so an admin can see who signed
an upload and notice an unsigned or damaged one before assigning it to devices.

Uploads come from admins but may be anything, so every structure is read defensively: a file
that does not parse raises ApkError with a message meant for the admin, never anything else."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree

from apkInspector.axml import get_manifest  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

ApkErrorReason = Literal["notZip", "noManifest", "badManifest", "tooLarge"]

MANIFEST = "AndroidManifest.xml"
ANDROID = "{http://schemas.android.com/apk/res/android}"
# Real manifests are kilobytes; the cap keeps a zip bomb from being inflated into memory.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# A v1 signature holds a few certificates; anything bigger is not one.
MAX_V1_SIGNATURE_BYTES = 1024 * 1024

# IDs of the APK Signing Block entries we read, newest scheme first.
SIGNING_BLOCK_SCHEMES = (("v3", 0xF05368C0), ("v2", 0x7109871A))
SIGNING_BLOCK_MAGIC = b"APK Sig Block 42"
EOCD_MAGIC = b"PK\x05\x06"
EOCD_SIZE = 22
# Android's own rule for an app's package name: two or more dot-separated Java-like names.
PACKAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
MAX_PACKAGE_NAME = 255

UNSIGNED_WARNING = (
    "The APK is not signed. Devices verify an APK's signature before installing it and will "
    "refuse this one: sign it (for example with apksigner) and upload the signed APK."
)


class ApkError(ValueError):
    """An upload that is not a usable APK; the message tells the admin why."""

    def __init__(self, reason: ApkErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason: ApkErrorReason = reason


@dataclass(frozen=True)
class ApkInfo:
    package_name: str
    version_code: int
    # Empty when the manifest has none, or names a resource the server does not resolve.
    version_name: str
    min_sdk: int | None
    # The application label when it is plain text; None when it is a resource reference.
    display_name: str | None
    # Lowercase hex SHA-256 of the first signer's certificate (DER), as apksigner prints it.
    signing_cert_sha256: str | None
    # The schemes whose signer certificate could be read, e.g. ("v1", "v2", "v3").
    signature_schemes: tuple[str, ...]
    warnings: tuple[str, ...]


def read_apk(data: bytes | Path, max_bytes: int) -> ApkInfo:
    """Read an uploaded APK, refusing one larger than max_bytes.

    A Path is measured before it is read, so an oversized upload is never loaded into memory.
    A missing or unreadable file raises OSError: that is the caller's fault, not the upload's.
    """
    if isinstance(data, Path):
        data = _read_bounded_file(data, max_bytes)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    archive = _open_zip(data)
    manifest = _decode_manifest(_read_manifest(archive))
    schemes, cert, warnings = _signing_certificate(data, archive)
    return ApkInfo(
        package_name=manifest.package_name,
        version_code=manifest.version_code,
        version_name=manifest.version_name,
        min_sdk=manifest.min_sdk,
        display_name=manifest.display_name,
        signing_cert_sha256=cert,
        signature_schemes=schemes,
        warnings=warnings,
    )


def _too_large(max_bytes: int) -> ApkError:
    return ApkError("tooLarge", f"The APK is larger than the upload limit of {max_bytes} bytes.")


def _read_bounded_file(path: Path, max_bytes: int) -> bytes:
    if path.stat().st_size > max_bytes:
        raise _too_large(max_bytes)
    with path.open("rb") as f:
        # The file may have grown since stat(); never read more than one byte past the limit.
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise ApkError("notZip", "The file is not an APK: it is not a zip archive.") from e


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    """The member's content, or None when it is over limit or cannot be inflated.

    The declared size is checked first, and the read is bounded too, because a crafted
    archive can declare a small size and inflate to gigabytes."""
    if info.file_size > limit:
        return None
    try:
        with archive.open(info) as f:
            content = f.read(limit + 1)
    # zipfile and zlib raise many types on damaged data (BadZipFile, zlib.error, EOFError,
    # NotImplementedError for an unknown method, RuntimeError when encrypted, ...).
    except Exception:
        return None
    return content if len(content) <= limit else None


def _read_manifest(archive: zipfile.ZipFile) -> bytes:
    try:
        info = archive.getinfo(MANIFEST)
    except KeyError:
        raise ApkError(
            "noManifest", "The file is not an APK: it has no AndroidManifest.xml."
        ) from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise _bad_manifest("is larger than 4 MiB, so it was not decoded")
    content = _read_member(archive, info, MAX_MANIFEST_BYTES)
    if content is None:
        raise _bad_manifest("cannot be extracted, or inflates to more than 4 MiB")
    return content


def _bad_manifest(problem: str) -> ApkError:
    return ApkError("badManifest", f"The APK's AndroidManifest.xml {problem}.")


@dataclass(frozen=True)
class _Manifest:
    package_name: str
    version_code: int
    version_name: str
    min_sdk: int | None
    display_name: str | None


def _decode_manifest(binary: bytes) -> _Manifest:
    try:
        text = get_manifest(io.BytesIO(binary))
    # apkInspector is untyped and raises whatever its parsing trips on (struct.error,
    # IndexError, UnicodeDecodeError, ...); all of it means "not a binary manifest".
    except Exception as e:
        raise _bad_manifest("cannot be decoded") from e
    if not isinstance(text, str) or "<!DOCTYPE" in text:
        # apkInspector writes only elements; a DOCTYPE could only come from crafted strings
        # and would let entity expansion into the XML parser.
        raise _bad_manifest("cannot be decoded")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as e:
        raise _bad_manifest("cannot be decoded") from e
    if root.tag != "manifest":
        raise _bad_manifest("does not start with a <manifest> element")
    return _Manifest(
        package_name=_package_name(root),
        version_code=_version_code(root),
        version_name=_plain_text(root.get(f"{ANDROID}versionName")) or "",
        min_sdk=_min_sdk(root),
        display_name=_display_name(root),
    )


def _package_name(root: ElementTree.Element) -> str:
    package = root.get("package")
    if not package:
        raise _bad_manifest("has no package name")
    if len(package) > MAX_PACKAGE_NAME or not PACKAGE_NAME.fullmatch(package):
        raise _bad_manifest(f"has an invalid package name: {package[:100]!r}")
    return package


def _version_code(root: ElementTree.Element) -> int:
    raw = root.get(f"{ANDROID}versionCode")
    if raw is None:
        raise _bad_manifest("has no android:versionCode")
    code = _integer(raw)
    if code is None or code < 0:
        raise _bad_manifest(
            f"has an android:versionCode that is not a whole number of zero or more: {raw[:40]!r}"
        )
    return code


def _integer(raw: str) -> int | None:
    """A decimal attribute, or a hexadecimal one as apkInspector writes it ("0x0000002A")."""
    try:
        return int(raw, 16) if raw.lower().startswith("0x") else int(raw, 10)
    except ValueError:
        return None


def _min_sdk(root: ElementTree.Element) -> int | None:
    uses_sdk = root.find("uses-sdk")
    if uses_sdk is None:
        return None
    raw = uses_sdk.get(f"{ANDROID}minSdkVersion")
    # A preview codename ("VanillaIceCream") is not a number and gives no minimum we can use.
    return None if raw is None else _integer(raw)


def _display_name(root: ElementTree.Element) -> str | None:
    application = root.find("application")
    if application is None:
        return None
    return _plain_text(application.get(f"{ANDROID}label"))


def _plain_text(value: str | None) -> str | None:
    """The value when it is literal text; None for a resource reference (apkInspector writes
    those as "@" and the resource ID), which only resources.arsc could resolve."""
    if value is None or value.startswith("@") or not value.strip():
        return None
    return value


# Signatures. The certificate comes from the APK Signing Block (schemes v3, then v2) when
# there is one, else from the v1 (JAR) signature in META-INF.


class _Malformed(Exception):
    """A signing structure that does not parse; never leaves this module."""


def _signing_certificate(
    data: bytes, archive: zipfile.ZipFile
) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """The schemes present, the first signer's certificate digest, and warnings."""
    warnings: list[str] = []
    block_certs: dict[str, bytes] = {}
    try:
        block_certs = _signing_block_certificates(data)
    except _Malformed as e:
        warnings.append(
            f"The APK Signing Block is damaged ({e}), so its v2/v3 signatures could not be read. "
            "Devices verify signatures themselves and will most likely refuse to install this "
            "APK: sign it again and upload it again."
        )
    v1_cert = _v1_certificate(archive)
    schemes = tuple(
        scheme
        for scheme, present in (
            ("v1", v1_cert is not None),
            ("v2", "v2" in block_certs),
            ("v3", "v3" in block_certs),
        )
        if present
    )
    cert = block_certs.get("v3") or block_certs.get("v2") or v1_cert
    if cert is None:
        warnings.append(UNSIGNED_WARNING)
        return schemes, None, tuple(warnings)
    return schemes, hashlib.sha256(cert).hexdigest(), tuple(warnings)


def _u32(data: bytes, pos: int) -> int:
    if pos < 0 or pos + 4 > len(data):
        raise _Malformed("truncated")
    value: int = struct.unpack_from("<I", data, pos)[0]
    return value


def _u64(data: bytes, pos: int) -> int:
    if pos < 0 or pos + 8 > len(data):
        raise _Malformed("truncated")
    value: int = struct.unpack_from("<Q", data, pos)[0]
    return value


def _length_prefixed(data: bytes, pos: int) -> tuple[bytes, int]:
    """The uint32-length-prefixed bytes at pos, and the position just after them."""
    size = _u32(data, pos)
    start = pos + 4
    if size > len(data) - start:
        raise _Malformed("a length runs past its container")
    return data[start : start + size], start + size


def _sequence(data: bytes) -> Iterator[bytes]:
    """The elements of a sequence of uint32-length-prefixed elements filling data."""
    pos = 0
    while pos < len(data):
        element, pos = _length_prefixed(data, pos)
        yield element


def _signing_block_certificates(data: bytes) -> dict[str, bytes]:
    """Scheme ("v2", "v3") -> DER of its first signer's first certificate.

    Empty when the APK has no signing block; raises _Malformed when it has a damaged one."""
    pairs = _signing_block_pairs(data)
    certs: dict[str, bytes] = {}
    for scheme, block_id in SIGNING_BLOCK_SCHEMES:
        if block_id in pairs:
            try:
                certs[scheme] = _first_signer_certificate(pairs[block_id])
            except _Malformed as e:
                raise _Malformed(f"its {scheme} signature: {e}") from None
    return certs


def _end_of_central_directory(data: bytes) -> int | None:
    # The record ends with a comment of up to 65535 bytes, and the comment must reach exactly
    # to the end of the file; search backwards as apksigner does.
    if len(data) < EOCD_SIZE:
        return None
    lowest = max(0, len(data) - EOCD_SIZE - 0xFFFF)
    pos = data.rfind(EOCD_MAGIC, lowest, len(data) - EOCD_SIZE + 4)
    while pos >= 0:
        (comment_length,) = struct.unpack_from("<H", data, pos + 20)
        if pos + EOCD_SIZE + comment_length == len(data):
            return pos
        pos = data.rfind(EOCD_MAGIC, lowest, pos + 3)
    return None


def _signing_block_pairs(data: bytes) -> dict[int, bytes]:
    """The ID -> value pairs of the APK Signing Block, which sits just before the central
    directory: uint64 size, the pairs, uint64 size again, then the 16-byte magic."""
    eocd = _end_of_central_directory(data)
    if eocd is None:
        return {}
    central_directory = _u32(data, eocd + 16)
    footer = central_directory - 24
    if footer < 8 or central_directory > eocd:
        return {}
    if data[central_directory - 16 : central_directory] != SIGNING_BLOCK_MAGIC:
        return {}
    size = _u64(data, footer)
    start = central_directory - size - 8
    if size < 24 or start < 0 or _u64(data, start) != size:
        raise _Malformed("its two size fields disagree")
    pairs: dict[int, bytes] = {}
    pos = start + 8
    while pos < footer:
        length = _u64(data, pos)
        if length < 4 or length > footer - pos - 8:
            raise _Malformed("an entry's length runs past the block")
        # The first entry with an ID wins, as on the device.
        pairs.setdefault(_u32(data, pos + 8), data[pos + 12 : pos + 8 + length])
        pos += 8 + length
    return pairs


def _first_signer_certificate(value: bytes) -> bytes:
    """The first certificate of the first signer in a v2 or v3 signature.

    value: length-prefixed signers, each a length-prefixed signer whose first field is the
    length-prefixed signed data: length-prefixed digests, then length-prefixed certificates
    (v3 adds SDK bounds after them, which we do not need)."""
    signers, _ = _length_prefixed(value, 0)
    for signer in _sequence(signers):
        signed_data, _ = _length_prefixed(signer, 0)
        _, pos = _length_prefixed(signed_data, 0)
        certificates, _ = _length_prefixed(signed_data, pos)
        for der in _sequence(certificates):
            return _checked_certificate(der)
        raise _Malformed("the first signer has no certificate")
    raise _Malformed("it has no signer")


def _checked_certificate(der: bytes) -> bytes:
    try:
        x509.load_der_x509_certificate(der)
    except ValueError:
        raise _Malformed("a certificate is not valid X.509") from None
    return der


def _v1_certificate(archive: zipfile.ZipFile) -> bytes | None:
    """DER of the first certificate of the first v1 signature in META-INF, if any."""
    for info in archive.infolist():
        name = info.filename
        if not name.startswith("META-INF/") or "/" in name[len("META-INF/") :]:
            continue
        if not name.upper().endswith((".RSA", ".DSA", ".EC")):
            continue
        content = _read_member(archive, info, MAX_V1_SIGNATURE_BYTES)
        if content is None:
            continue
        try:
            certificates = pkcs7.load_der_pkcs7_certificates(content)
        # cryptography raises ValueError for bad DER, and has raised other types for
        # unsupported PKCS#7 content in the past; an unreadable file is simply not a signature.
        except Exception:
            continue
        if certificates:
            return certificates[0].public_bytes(Encoding.DER)
    return None
