"""Small real APKs for tests: a binary manifest written with pyaxml, zipped, and optionally
signed by Debian's apksigner with a keystore made by keytool.

apksigner and keytool each take about half a second, so keystores are cached on disk per
directory and alias: pass a session-scoped directory (tmp_path_factory) to share them."""

from __future__ import annotations

import io
import subprocess
import tempfile
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pyaxml  # type: ignore[import-untyped]
from lxml import etree  # type: ignore[import-untyped]

APKSIGNER = "/usr/bin/apksigner"
KEYTOOL = "/usr/bin/keytool"
PASSWORD = "password"
# Enough for the reader, which never looks inside the dex.
DEX_PLACEHOLDER = b"dex\n035\x00" + bytes(104)


def manifest_xml(
    package: str,
    version_code: int | str | None,
    version_name: str = "1.0",
    *,
    min_sdk: int = 26,
    label: str | None = "Test app",
) -> str:
    """The text manifest build_apk compiles; version_code None leaves the attribute out."""
    version = "" if version_code is None else f" android:versionCode={quoteattr(str(version_code))}"
    application = (
        "<application/>" if label is None else f"<application android:label={quoteattr(label)}/>"
    )
    return (
        '<manifest xmlns:android="http://schemas.android.com/apk/res/android"'
        f" package={quoteattr(package)}{version}"
        f" android:versionName={quoteattr(version_name)}>"
        f'<uses-sdk android:minSdkVersion="{min_sdk}" android:targetSdkVersion="34"/>'
        f"{application}</manifest>"
    )


def binary_manifest(xml: str) -> bytes:
    """xml compiled to Android's binary XML, as aapt would."""
    axml = pyaxml.AXML()
    axml.from_xml(etree.fromstring(xml.encode()))
    packed: bytes = axml.pack()
    return packed


def zip_apk(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def build_apk(
    package: str,
    version_code: int,
    version_name: str = "1.0",
    *,
    min_sdk: int = 26,
    label: str | None = "Test app",
    extra_files: dict[str, bytes] | None = None,
) -> bytes:
    """An unsigned APK with a real binary manifest and a placeholder classes.dex."""
    xml = manifest_xml(package, version_code, version_name, min_sdk=min_sdk, label=label)
    files = {"AndroidManifest.xml": binary_manifest(xml), "classes.dex": DEX_PLACEHOLDER}
    files.update(extra_files or {})
    return zip_apk(files)


def keystore(keystore_dir: Path, alias: str = "test") -> Path:
    """An EC P-256 keystore holding one key named alias, created on first use."""
    path = keystore_dir / f"{alias}.jks"
    if not path.exists():
        keystore_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                KEYTOOL,
                "-genkeypair",
                "-keystore",
                str(path),
                "-alias",
                alias,
                "-storepass",
                PASSWORD,
                "-keypass",
                PASSWORD,
                "-keyalg",
                "EC",
                "-groupname",
                "secp256r1",
                "-dname",
                f"CN={alias}",
                "-validity",
                "3650",
                "-noprompt",
            ],
            check=True,
            capture_output=True,
        )
    return path


def sign_apk(
    apk: bytes, keystore_dir: Path, alias: str = "test", *, schemes: tuple[str, ...] = ()
) -> bytes:
    """apk signed by apksigner with the alias key. schemes limits the signature schemes (e.g.
    ("v1",)); by default apksigner picks them for min SDK 26 (v2 and v3)."""
    options = ["--min-sdk-version", "26"]
    if schemes:
        for scheme in ("v1", "v2", "v3", "v4"):
            enabled = "true" if scheme in schemes else "false"
            options += [f"--{scheme}-signing-enabled", enabled]
    with tempfile.TemporaryDirectory() as work:
        unsigned, signed = Path(work, "in.apk"), Path(work, "out.apk")
        unsigned.write_bytes(apk)
        subprocess.run(
            [
                APKSIGNER,
                "sign",
                "--ks",
                str(keystore(keystore_dir, alias)),
                "--ks-pass",
                f"pass:{PASSWORD}",
                "--ks-key-alias",
                alias,
                *options,
                "--out",
                str(signed),
                str(unsigned),
            ],
            check=True,
            capture_output=True,
        )
        return signed.read_bytes()


def print_certs(apk: bytes) -> str:
    """What `apksigner verify --print-certs` says about apk."""
    with tempfile.TemporaryDirectory() as work:
        path = Path(work, "app.apk")
        path.write_bytes(apk)
        result = subprocess.run(
            [APKSIGNER, "verify", "--print-certs", str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
    return result.stdout


def cert_sha256(keystore_dir: Path, alias: str = "test") -> str:
    """The SHA-256 digest apksigner reports for the alias key's certificate, cached beside the
    keystore; an independent answer to compare the reader's against."""
    cached = keystore_dir / f"{alias}.sha256"
    if cached.exists():
        return cached.read_text()
    signed = sign_apk(build_apk("com.example.certprobe", 1), keystore_dir, alias)
    prefix = "Signer #1 certificate SHA-256 digest:"
    for line in print_certs(signed).splitlines():
        if line.startswith(prefix):
            digest = line.removeprefix(prefix).strip()
            cached.write_text(digest)
            return digest
    raise AssertionError("apksigner printed no certificate digest")
