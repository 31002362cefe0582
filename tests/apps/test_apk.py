"""Reading uploaded APKs: real ones built with pyaxml and signed with apksigner, damaged ones,
and generated garbage, which must only ever give ApkInfo or ApkError."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aospmdm.apps.apk import ApkError, ApkInfo, read_apk
from tests.apps import apkfactory

LIMIT = 10 * 1024 * 1024
V2_ID = struct.pack("<I", 0x7109871A)
V3_ID = struct.pack("<I", 0xF05368C0)
MAGIC = b"APK Sig Block 42"


@pytest.fixture(scope="module")
def keystore_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keystores")


@pytest.fixture(scope="module")
def signed_apk(keystore_dir: Path) -> bytes:
    return apkfactory.sign_apk(apkfactory.build_apk("com.example.signed", 7), keystore_dir)


def reason(data: bytes | Path, max_bytes: int = LIMIT) -> str:
    with pytest.raises(ApkError) as raised:
        read_apk(data, max_bytes)
    return raised.value.reason


def test_unsigned_apk_reads_back_with_a_warning() -> None:
    apk = apkfactory.build_apk("com.example.app", 42, "4.2", min_sdk=28, label="Field & Co")

    info = read_apk(apk, LIMIT)

    assert info.package_name == "com.example.app"
    assert info.version_code == 42
    assert info.version_name == "4.2"
    assert info.min_sdk == 28
    assert info.display_name == "Field & Co"
    assert info.signing_cert_sha256 is None
    assert info.signature_schemes == ()
    assert len(info.warnings) == 1
    assert "not signed" in info.warnings[0]
    assert "Devices verify" in info.warnings[0]


def test_a_resource_label_is_no_display_name() -> None:
    apk = apkfactory.build_apk("com.example.app", 1, label="@0x7f010000")
    assert read_apk(apk, LIMIT).display_name is None


def test_a_missing_label_is_no_display_name() -> None:
    assert (
        read_apk(apkfactory.build_apk("com.example.app", 1, label=None), LIMIT).display_name is None
    )


def test_signed_apk_names_the_certificate_apksigner_prints(
    signed_apk: bytes, keystore_dir: Path
) -> None:
    info = read_apk(signed_apk, LIMIT)

    assert info.package_name == "com.example.signed"
    assert info.signing_cert_sha256 == apkfactory.cert_sha256(keystore_dir)
    assert {"v2", "v3"} <= set(info.signature_schemes)
    assert info.warnings == ()


def test_v1_only_signature_is_read_from_meta_inf(keystore_dir: Path) -> None:
    apk = apkfactory.build_apk("com.example.legacy", 3)
    signed = apkfactory.sign_apk(apk, keystore_dir, schemes=("v1",))

    info = read_apk(signed, LIMIT)

    assert info.signature_schemes == ("v1",)
    assert info.signing_cert_sha256 == apkfactory.cert_sha256(keystore_dir)
    assert info.warnings == ()


def test_different_keys_give_different_certificates(signed_apk: bytes, keystore_dir: Path) -> None:
    other = apkfactory.sign_apk(
        apkfactory.build_apk("com.example.signed", 8), keystore_dir, "other"
    )
    assert read_apk(other, LIMIT).signing_cert_sha256 == apkfactory.cert_sha256(
        keystore_dir, "other"
    )
    assert (
        read_apk(other, LIMIT).signing_cert_sha256
        != read_apk(signed_apk, LIMIT).signing_cert_sha256
    )


def test_path_reads_like_bytes(tmp_path: Path) -> None:
    path = tmp_path / "app.apk"
    path.write_bytes(apkfactory.build_apk("com.example.app", 5))
    assert read_apk(path, LIMIT).version_code == 5


def test_not_a_zip() -> None:
    with pytest.raises(ApkError) as raised:
        read_apk(b"this is a text file, not an APK", LIMIT)
    assert raised.value.reason == "notZip"
    assert str(raised.value) == "The file is not an APK: it is not a zip archive."


def test_zip_without_manifest() -> None:
    assert reason(apkfactory.zip_apk({"classes.dex": apkfactory.DEX_PLACEHOLDER})) == "noManifest"


def test_garbage_manifest() -> None:
    apk = apkfactory.zip_apk({"AndroidManifest.xml": b"\x03\x00\x08\x00garbage" * 10})
    assert reason(apk) == "badManifest"


def test_text_manifest_is_not_a_binary_manifest() -> None:
    xml = apkfactory.manifest_xml("com.example.app", 1).encode()
    assert reason(apkfactory.zip_apk({"AndroidManifest.xml": xml})) == "badManifest"


@pytest.mark.parametrize("version_code", [None, "-1", "banana"])
def test_manifest_without_a_usable_version_code(version_code: str | None) -> None:
    xml = apkfactory.manifest_xml("com.example.app", version_code)
    apk = apkfactory.zip_apk({"AndroidManifest.xml": apkfactory.binary_manifest(xml)})

    with pytest.raises(ApkError) as raised:
        read_apk(apk, LIMIT)

    assert raised.value.reason == "badManifest"
    assert "versionCode" in str(raised.value)


@pytest.mark.parametrize("package", ["", "nodots", "com.example.1app"])
def test_manifest_without_a_valid_package(package: str) -> None:
    xml = apkfactory.manifest_xml(package, 1)
    apk = apkfactory.zip_apk({"AndroidManifest.xml": apkfactory.binary_manifest(xml)})
    assert reason(apk) == "badManifest"


def test_manifest_zip_bomb_is_refused_without_inflating_it() -> None:
    apk = apkfactory.zip_apk({"AndroidManifest.xml": bytes(5 * 1024 * 1024)})
    assert len(apk) < 64 * 1024
    assert reason(apk) == "badManifest"


def test_manifest_lying_about_its_size_is_refused() -> None:
    apk = bytearray(apkfactory.zip_apk({"AndroidManifest.xml": bytes(5 * 1024 * 1024)}))
    # Declare 1 KiB uncompressed in the central directory; the content still inflates to 5 MiB.
    central = apk.rfind(b"PK\x01\x02")
    apk[central + 24 : central + 28] = struct.pack("<I", 1024)
    assert reason(bytes(apk)) == "badManifest"


def test_too_large_bytes() -> None:
    apk = apkfactory.build_apk("com.example.app", 1)
    assert reason(apk, max_bytes=len(apk) - 1) == "tooLarge"
    assert read_apk(apk, max_bytes=len(apk)).version_code == 1


def test_too_large_path_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.apk"
    path.write_bytes(apkfactory.build_apk("com.example.app", 1))

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the oversized file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    assert reason(path, max_bytes=100) == "tooLarge"


def _signing_block(apk: bytes) -> tuple[int, int]:
    """Start and end (just after the magic) of the APK Signing Block."""
    end = apk.rindex(MAGIC) + len(MAGIC)
    (size,) = struct.unpack_from("<Q", apk, end - 24)
    return end - size - 8, end


def test_damaged_signer_length_is_a_warning_not_an_error(signed_apk: bytes) -> None:
    apk = bytearray(signed_apk)
    start, end = _signing_block(signed_apk)
    for block_id in (V2_ID, V3_ID):
        value = apk.index(block_id, start, end) + 4
        apk[value : value + 4] = b"\xff\xff\xff\xff"

    info = read_apk(bytes(apk), LIMIT)

    assert "v2" not in info.signature_schemes
    assert "v3" not in info.signature_schemes
    assert any("Signing Block is damaged" in w for w in info.warnings)


def test_damaged_block_size_is_a_warning_not_an_error(signed_apk: bytes) -> None:
    apk = bytearray(signed_apk)
    start, _ = _signing_block(signed_apk)
    apk[start : start + 8] = struct.pack("<Q", 12345)

    info = read_apk(bytes(apk), LIMIT)

    assert info.package_name == "com.example.signed"
    assert any("Signing Block is damaged" in w for w in info.warnings)


def test_damaged_block_without_v1_is_unsigned(keystore_dir: Path) -> None:
    signed = apkfactory.sign_apk(
        apkfactory.build_apk("com.example.modern", 1), keystore_dir, schemes=("v2",)
    )
    apk = bytearray(signed)
    start, end = _signing_block(signed)
    value = apk.index(V2_ID, start, end) + 4
    apk[value : value + 4] = b"\xff\xff\xff\xff"

    info = read_apk(bytes(apk), LIMIT)

    assert info.signing_cert_sha256 is None
    assert info.signature_schemes == ()
    assert len(info.warnings) == 2


def _read_or_refuse(data: bytes) -> None:
    try:
        result = read_apk(data, LIMIT)
    except ApkError as e:
        assert e.reason in {"notZip", "noManifest", "badManifest", "tooLarge"}
        assert str(e)
    else:
        assert isinstance(result, ApkInfo)


@given(st.binary(max_size=2048))
def test_random_bytes_give_apkinfo_or_apkerror(data: bytes) -> None:
    _read_or_refuse(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=1 << 20),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=8),
    in_block=st.booleans(),
)
def test_mutated_apks_give_apkinfo_or_apkerror(
    signed_apk: bytes, cut: int, flips: list[tuple[int, int]], in_block: bool
) -> None:
    apk = bytearray(signed_apk)
    # Half the time aim the flips at the signing block, where the hand-written parsing is.
    start, end = _signing_block(signed_apk) if in_block else (0, len(apk))
    for position, mask in flips:
        apk[start + position % (end - start)] ^= mask
    if cut % 2:
        del apk[cut % len(apk) :]
    _read_or_refuse(bytes(apk))
