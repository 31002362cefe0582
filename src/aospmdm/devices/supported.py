"""The AOSP devices Intune lists as supported, with their minimum firmware, and the check the
device page shows. Nothing refuses a device for being outside the list: Intune's list says
what Microsoft has tested, and an operator may well run other hardware on purpose.

Source: Microsoft Learn, "Android Open Source Project Supported Devices", the revision dated
2024-09-23, the nearest to the enrollment guide this project follows (2024-09-18). See
docs/supported-devices.md; Microsoft's page is the place to look for later additions.

The firmware compared is the device's ``osVersion`` as its agent reports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOURCE = "Microsoft Learn, Android Open Source Project Supported Devices (revision of 2024-09-23)"
SOURCE_URL = (
    "https://learn.microsoft.com/mem/intune/fundamentals/android-os-project-supported-devices"
)

# Where the comparable version sits in a firmware string: the first dotted number, so
# "11.2", "PUI 5.6.0", "v49" and "49.0.0.188" all read as versions.
DOTTED = r"(\d+(?:\.\d+)*)"


@dataclass(frozen=True)
class SupportedModel:
    manufacturer: str
    model: str
    # As Microsoft publishes it, for people to read.
    minimum_firmware: str
    # The part of it that is compared, a dotted version.
    minimum_version: str
    device_type: str = "AR/VR headset"
    restrictions: str = ""
    # Other names the same hardware reports or is sold under.
    aliases: tuple[str, ...] = ()
    # Finds the comparable version in the device's firmware string (group 1).
    pattern: str = DOTTED


@dataclass(frozen=True)
class Manufacturer:
    name: str
    aliases: tuple[str, ...] = ()


MANUFACTURERS = (
    Manufacturer("DigiLens", ("DigiLens Inc.",)),
    Manufacturer("HTC"),
    Manufacturer("Lenovo"),
    Manufacturer("Meta", ("Oculus", "Meta Platforms")),
    Manufacturer("PICO", ("Pico Technology", "Pico Interactive")),
    Manufacturer("RealWear"),
)

SELECT_REGIONS = "Available in select regions only (Meta for Work)"

SUPPORTED_MODELS = (
    SupportedModel(
        "DigiLens",
        "DigiLens ARGO",
        "DigiOS 2068 (B1.0001.2068)",
        "2068",
        aliases=("ARGO",),
        # DigiOS builds read "DigiOS 2068" or "B1.0001.2068": the build is the last number.
        pattern=r"(\d+)\D*$",
    ),
    SupportedModel(
        "HTC", "Vive Focus Vision", "7.0.999.159", "7.0.999.159", aliases=("Focus Vision",)
    ),
    SupportedModel("HTC", "Vive Focus 3", "5.2 - 5.0.999.624", "5.0.999.624", aliases=("Focus 3",)),
    SupportedModel(
        "HTC", "Vive XR Elite", "4.0 - 1.0.999.350", "1.0.999.350", aliases=("XR Elite",)
    ),
    SupportedModel(
        "Lenovo",
        "ThinkReality VRX",
        "VRX_user_S766001_2310192349_kona",
        "766001",
        aliases=("VRX",),
        # Lenovo build names carry the build number after an "S".
        pattern=r"S(\d+)",
    ),
    SupportedModel("Meta", "Quest 2", "v49", "49", restrictions=SELECT_REGIONS),
    SupportedModel("Meta", "Quest Pro", "v49", "49", restrictions=SELECT_REGIONS),
    SupportedModel("Meta", "Quest 3", "v59", "59", restrictions=SELECT_REGIONS),
    SupportedModel(
        "PICO",
        "PICO Neo3 Pro/Eye",
        "PUI 4.8.19",
        "4.8.19",
        aliases=("Neo3 Pro", "Neo3 Pro Eye", "Neo 3 Pro", "Neo 3 Pro Eye"),
    ),
    SupportedModel("PICO", "PICO 4 Enterprise", "PUI 5.6.0", "5.6.0", aliases=("4 Enterprise",)),
    SupportedModel("RealWear", "HMT-1", "11.2", "11.2"),
    SupportedModel("RealWear", "HMT-1Z1", "11.2", "11.2"),
    SupportedModel("RealWear", "Navigator 500", "1.1", "1.1"),
)


@dataclass(frozen=True)
class Support:
    """Whether a device is on Intune's list; ``reason`` says why not, for the device page."""

    supported: bool
    reason: str | None = None
    model: SupportedModel | None = None


def _key(text: str) -> str:
    """Case, spaces and punctuation do not tell models apart: "Navigator500" is "Navigator 500"."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _manufacturer(name: str) -> Manufacturer | None:
    key = _key(name)
    if not key:
        return None
    for maker in MANUFACTURERS:
        # Prefixes allow suffixes such as "Inc." or "Technology Co., Ltd.".
        if any(key.startswith(_key(n)) for n in (maker.name, *maker.aliases)):
            return maker
    return None


def _model_key(model: str, maker: Manufacturer) -> str:
    """The model without its brand in front: "HTC Vive Focus 3" and "Meta Quest 3" name the
    same devices as "Vive Focus 3" and "Quest 3"."""
    key = _key(model)
    for brand in sorted((maker.name, *maker.aliases), key=len, reverse=True):
        prefix = _key(brand)
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix) :]
    return key


def find_model(manufacturer: str, model: str) -> SupportedModel | None:
    """The list entry for a device, matching names loosely; None when it is not listed."""
    maker = _manufacturer(manufacturer)
    if maker is None:
        return None
    wanted = _model_key(model, maker)
    for entry in SUPPORTED_MODELS:
        if entry.manufacturer != maker.name:
            continue
        names = (entry.model, *entry.aliases)
        if any(_model_key(n, maker) == wanted for n in names):
            return entry
    return None


def version_tuple(version: str) -> tuple[int, ...]:
    """A dotted version as numbers ("11.10" is newer than "11.9"); trailing zeros do not count,
    so "11.2" and "11.2.0" are equal."""
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def firmware_version(entry: SupportedModel, firmware: str) -> tuple[int, ...] | None:
    """The comparable version in a device's firmware string, or None when it has none."""
    found = re.search(entry.pattern, firmware.strip())
    return version_tuple(found.group(1)) if found else None


def support_of(manufacturer: str, model: str, firmware: str) -> Support:
    """Whether Intune lists this model, and the firmware (the device's osVersion) is at least
    the listed minimum."""
    entry = find_model(manufacturer, model)
    if entry is None:
        name = " ".join(p for p in (manufacturer.strip(), model.strip()) if p) or "This model"
        return Support(False, f"{name} is not in Intune's list of supported AOSP devices.")
    version = firmware_version(entry, firmware)
    if version is None:
        return Support(
            False,
            f"Firmware '{firmware}' cannot be compared with the minimum "
            f"{entry.minimum_firmware} for this model.",
            entry,
        )
    if version < version_tuple(entry.minimum_version):
        return Support(
            False,
            f"Firmware {firmware} is older than the minimum {entry.minimum_firmware} for this "
            "model.",
            entry,
        )
    return Support(True, None, entry)
