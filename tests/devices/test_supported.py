"""Intune's list of supported AOSP devices and the check the device page shows."""

from __future__ import annotations

import pytest

from aospmdm.devices.supported import SUPPORTED_MODELS, support_of, version_tuple


def test_listed_model_at_or_above_its_minimum_firmware_is_supported() -> None:
    for manufacturer, model, firmware in (
        ("RealWear", "HMT-1", "11.2"),
        ("RealWear", "HMT-1Z1", "12.0.3"),
        ("RealWear", "Navigator 500", "1.1"),
        ("HTC", "Vive Focus 3", "5.0.999.624"),
        ("Meta", "Quest 3", "v59"),
        ("PICO", "PICO 4 Enterprise", "PUI 5.6.0"),
        ("Lenovo", "ThinkReality VRX", "VRX_user_S766001_2310192349_kona"),
        ("DigiLens", "DigiLens ARGO", "DigiOS 2068 (B1.0001.2068)"),
    ):
        support = support_of(manufacturer, model, firmware)
        assert support.supported, (manufacturer, model, support.reason)
        assert support.reason is None


def test_every_listed_model_passes_at_its_own_published_minimum() -> None:
    for entry in SUPPORTED_MODELS:
        support = support_of(entry.manufacturer, entry.model, entry.minimum_firmware)
        assert support.supported, (entry.model, support.reason)


def test_old_firmware_is_flagged_with_the_minimum() -> None:
    support = support_of("RealWear", "HMT-1", "11.1.9")
    assert not support.supported
    assert support.reason == "Firmware 11.1.9 is older than the minimum 11.2 for this model."
    assert not support_of("Meta", "Quest 2", "v48").supported
    assert not support_of("PICO", "PICO Neo3 Pro/Eye", "PUI 4.8.9").supported
    assert not support_of("DigiLens", "ARGO", "B1.0001.2067").supported
    assert not support_of("Lenovo", "ThinkReality VRX", "VRX_user_S765999_2309").supported


def test_firmware_compares_numerically_not_as_text() -> None:
    assert version_tuple("11.10") > version_tuple("11.9")
    assert version_tuple("11.2") == version_tuple("11.2.0")
    assert support_of("RealWear", "HMT-1", "11.10").supported
    assert support_of("RealWear", "Navigator 500", "11").supported, "11 is past 1.1"
    assert support_of("Meta", "Quest Pro", "49.0.0.188.350").supported


def test_firmware_without_a_version_is_flagged_not_guessed() -> None:
    support = support_of("RealWear", "HMT-1", "")
    assert not support.supported
    assert support.reason == "Firmware '' cannot be compared with the minimum 11.2 for this model."


def test_unknown_model_or_manufacturer_is_flagged() -> None:
    support = support_of("Google", "Pixel 7", "14")
    assert not support.supported
    assert support.reason == "Google Pixel 7 is not in Intune's list of supported AOSP devices."
    assert not support_of("RealWear", "Navigator 520", "1.4").supported
    assert not support_of("PICO", "Pico 4", "5.9").supported, "the consumer Pico 4 is not listed"
    assert not support_of("Acme", "HMT-1", "11.2").supported


@pytest.mark.parametrize(
    ("manufacturer", "model"),
    [
        ("realwear", "hmt-1"),
        ("RealWear Inc.", "HMT1"),
        ("RealWear", "Navigator500"),
        ("RealWear", "RealWear Navigator 500"),
        ("HTC", "HTC Vive Focus 3"),
        ("HTC", "VIVE XR Elite"),
        ("Oculus", "Quest 2"),
        ("Meta", "Meta Quest Pro"),
        ("Pico", "Neo3 Pro Eye"),
        ("PICO", "Pico Neo 3 Pro"),
        ("DigiLens Inc.", "ARGO"),
    ],
)
def test_model_names_match_whatever_their_case_spacing_or_brand_prefix(
    manufacturer: str, model: str
) -> None:
    support = support_of(manufacturer, model, "9999")
    assert support.supported, support.reason
    assert support.model is not None
