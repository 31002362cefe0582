"""What the simulated device can enforce of a policy (docs/protocol.md §10): its controls,
with the values they accept and the device's own default, and its screen lock, judged as
Android judges a passcode.

Pure functions of their arguments; ``Device.apply_policy`` puts them to work on a device."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

from aospmdm import protocol as p

Value = bool | int | str


@dataclass(frozen=True)
class Control:
    """One restriction the device can enforce: the Graph name of the setting, what it
    accepts, and its value while no policy configures it."""

    name: str
    kind: Literal["bool", "int", "choice"]
    default: Value | None  # None: the device has no such limit of its own
    minimum: int = 0
    maximum: int = 0
    choices: tuple[str, ...] = ()

    def problem(self, value: object) -> str | None:
        """Why ``value`` cannot be set on this control; None when it can."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"{self.name} takes true or false."
        if self.kind == "int":
            # bool is an int in Python, not in JSON.
            if isinstance(value, bool) or not isinstance(value, int):
                return self._range()
            return None if self.minimum <= value <= self.maximum else self._range()
        if isinstance(value, str) and value in self.choices:
            return None
        return f"{self.name} takes one of {', '.join(self.choices)}."

    def _range(self) -> str:
        return f"{self.name} takes a whole number from {self.minimum} to {self.maximum}."


# The password types a policy can require of an AOSP device, weakest first.
REQUIRED_PASSCODE_TYPES = ("deviceDefault", "numeric", "numericComplex")

CONTROLS: dict[str, Control] = {
    c.name: c
    for c in (
        Control("cameraBlocked", "bool", False),
        Control("screenCaptureBlocked", "bool", False),
        Control("factoryResetBlocked", "bool", False),
        # Developer options are there for whoever turns them on, until a policy says no.
        Control("securityAllowDebuggingFeatures", "bool", True),
        Control("storageBlockExternalMedia", "bool", False),
        Control("storageBlockUsbFileTransfer", "bool", False),
        Control("appsBlockInstallFromUnknownSources", "bool", False),
        Control("passwordRequiredType", "choice", "deviceDefault", choices=REQUIRED_PASSCODE_TYPES),
        Control("passwordMinimumLength", "int", None, minimum=4, maximum=16),
        Control("passwordSignInFailureCountBeforeFactoryReset", "int", None, minimum=4, maximum=11),
        Control(
            "passwordMinutesOfInactivityBeforeScreenTimeout", "int", None, minimum=1, maximum=60
        ),
        Control("wifiBlockEditConfigurations", "bool", False),
        Control("bluetoothBlocked", "bool", False),
        Control("bluetoothBlockConfiguration", "bool", False),
    )
}
# Not a restriction: the device's ability to save Wi-Fi networks, which a device without
# Wi-Fi lacks. Hardware options name it beside the controls.
WIFI_NETWORKS = "wifiNetworks"
HARDWARE_CONTROLS = (*CONTROLS, WIFI_NETWORKS)

SECURITY_TYPES = ("open", "wep", "wpaPersonal")
_HEX = frozenset("0123456789abcdefABCDEF")
# Android's PasswordMetrics: a PIN is "complex" when no more than this many digits in a row
# repeat or step evenly.
MAX_SEQUENCE = 3
MIN_PASSCODE_LENGTH = 4


# --- the screen lock ---------------------------------------------------------------------


def longest_sequence(digits: str) -> int:
    """The length of the longest run of digits that repeat or step evenly (1111, 1234,
    8642), as Android's ``PasswordMetrics.maxLengthSequence`` counts them."""
    if len(digits) < 2:
        return len(digits)
    longest = run = 2
    for i in range(2, len(digits)):
        step = ord(digits[i]) - ord(digits[i - 1])
        run = run + 1 if step == ord(digits[i - 1]) - ord(digits[i - 2]) else 2
        longest = max(longest, run)
    return longest


def passcode_type(passcode: str | None) -> p.PasscodeType:
    """The kind of a passcode, as the device reports it in ``facts.passcodeType``."""
    if not passcode:
        return "none"
    if passcode.isascii() and passcode.isdigit():
        return "numericComplex" if longest_sequence(passcode) <= MAX_SEQUENCE else "numeric"
    if passcode.isalpha():
        return "alphabetic"
    if passcode.isalnum():
        return "alphanumeric"
    return "alphanumericWithSymbols"


def passcode_requirement(restrictions: dict[str, Value]) -> tuple[str, int] | None:
    """The passcode the restrictions in force require: the weakest acceptable type and the
    shortest acceptable length; None when they require none."""
    kind = restrictions.get("passwordRequiredType", "deviceDefault")
    length = restrictions.get("passwordMinimumLength")
    if kind == "deviceDefault" and length is None:
        return None
    wanted = str(kind) if kind != "deviceDefault" else "numeric"
    minimum = length if isinstance(length, int) else MIN_PASSCODE_LENGTH
    return wanted, max(minimum, MIN_PASSCODE_LENGTH)


def passcode_meets(passcode: str | None, kind: str, length: int) -> bool:
    """Whether ``passcode`` is of ``kind`` or stronger (Android's order of password
    qualities) and at least ``length`` characters long."""
    have = p.PASSCODE_TYPES.index(passcode_type(passcode))
    return have >= p.PASSCODE_TYPES.index(kind) and len(passcode or "") >= length


def new_passcode(kind: str, length: int) -> str:
    """A random PIN of ``length`` digits that passes as ``kind``: what the worker at the
    device chooses when the device asks for a passcode that meets the policy."""
    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(length))
        if passcode_meets(pin, kind, length):
            return pin


# --- Wi-Fi ---------------------------------------------------------------------------------


def wifi_problem(network: p.WifiNetwork) -> tuple[Literal["failed", "notSupported"], str] | None:
    """Why the device cannot save ``network`` (the state to report, and a message); None
    when it can. Android refuses a network whose key or proxy is unusable."""
    security, key = network.security_type, network.pre_shared_key
    if security not in SECURITY_TYPES:
        return "notSupported", f"The security type {security!r} is not supported."
    if security == "wpaPersonal" and not _wpa_key(key):
        return "failed", "A WPA network needs a key of 8-63 ASCII characters or 64 hex digits."
    if security == "wep" and not _wep_key(key):
        return "failed", "A WEP network needs a key of 5 or 13 ASCII characters or 10 or 26 hex."
    proxy = network.proxy
    if proxy is None:
        return None
    if proxy.type == "manual":
        if not proxy.host or proxy.port is None or not 1 <= proxy.port <= 65535:
            return "failed", "A manual proxy needs a host and a port from 1 to 65535."
    elif proxy.type == "automatic":
        if not proxy.pac_url:
            return "failed", "An automatic proxy needs the URL of its PAC file."
    else:
        return "notSupported", f"The proxy type {proxy.type!r} is not supported."
    return None


def _wpa_key(key: str | None) -> bool:
    if key is None:
        return False
    if len(key) == 64:
        return set(key) <= _HEX
    return 8 <= len(key) <= 63 and key.isascii() and key.isprintable()


def _wep_key(key: str | None) -> bool:
    if key is None:
        return False
    if len(key) in (10, 26):
        return set(key) <= _HEX
    return len(key) in (5, 13) and key.isascii() and key.isprintable()
