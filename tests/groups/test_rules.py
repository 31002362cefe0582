"""The device membership rule language: Entra's documented examples, invalid rules, precedence,
null and case semantics, collections, and property tests over generated rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aospmdm.groups.rules import DEVICE_PROPERTIES, PropertyType, Rule, RuleError, parse
from aospmdm.groups.rules.parser import And, Comparison, Not, Or, Quantified

# A device as docs/rules.md maps an aospmdm device, to vary in the examples below.
DEVICE: dict[str, Any] = {
    "accountEnabled": True,
    "deviceCategory": None,
    "deviceId": "d4fe7726-5966-431c-b3b8-cddc8fdb717d",
    "deviceManufacturer": "Samsung",
    "deviceModel": "Galaxy XCover 7",
    "displayName": "Factory1-0001",
    "deviceOSType": "AndroidAOSP",
    "deviceOSVersion": "14",
    "deviceOwnership": "Company",
    "deviceManagementAppId": "a2b8c3d4-aaaa-4bbb-8ccc-0123456789ab",
    "devicePhysicalIds": ["[SerialNumber]:R58N123", "[HardwareId]:abc"],
    "deviceTrustType": "Workplace",
    "enrollmentProfileName": "Factory 1 devices",
    "isRooted": False,
    "managementType": "MDM",
    "objectId": "d4fe7726-5966-431c-b3b8-cddc8fdb717d",
    "profileType": "RegisteredDevice",
    "systemLabels": [],
}


def device(**changes: Any) -> dict[str, Any]:
    return {**DEVICE, **changes}


# Every device example of Entra's "Rules for devices" table (and of older revisions of the
# page, and SPEC/issue examples), each with a device it matches and one it does not.
DOCUMENTED = [
    ("device.accountEnabled -eq true", {}, {"accountEnabled": False}),
    ('device.deviceCategory -eq "BYOD"', {"deviceCategory": "BYOD"}, {}),
    ('(device.deviceCategory -eq "BYOD")', {"deviceCategory": "byod"}, {"deviceCategory": "X"}),
    ('device.deviceId -eq "d4fe7726-5966-431c-b3b8-cddc8fdb717d"', {}, {"deviceId": "other"}),
    (
        'device.deviceManagementAppId -eq "0000000a-0000-0000-c000-000000000000"',
        {"deviceManagementAppId": "0000000a-0000-0000-c000-000000000000"},
        {},
    ),
    (
        'device.deviceManagementAppId -eq "54b943f8-d761-4f8d-951e-9cea1846db5a"',
        {"deviceManagementAppId": "54B943F8-D761-4F8D-951E-9CEA1846DB5A"},
        {},
    ),
    ('device.deviceManufacturer -eq "Samsung"', {}, {"deviceManufacturer": "Zebra"}),
    ('(device.deviceManufacturer -eq "Samsung")', {}, {"deviceManufacturer": None}),
    ('device.deviceModel -eq "iPad Air"', {"deviceModel": "iPad Air"}, {}),
    ('device.displayName -eq "Rob iPhone"', {"displayName": "rob iphone"}, {}),
    (
        '(device.deviceOSType -eq "iPad") -or (device.deviceOSType -eq "iOS")',
        {"deviceOSType": "iOS"},
        {},
    ),
    (
        '(device.deviceOSType -eq "iPad") -or (device.deviceOSType -eq "iPhone")',
        {"deviceOSType": "iPad"},
        {},
    ),
    (
        'device.deviceOSType -startsWith "AndroidEnterprise"',
        {"deviceOSType": "AndroidEnterprise"},
        {},
    ),
    (
        '(device.deviceOSType -contains "AndroidEnterprise")',
        {"deviceOSType": "AndroidEnterprise"},
        {},
    ),
    ('device.deviceOSType -eq "AndroidForWork"', {"deviceOSType": "AndroidForWork"}, {}),
    ('device.deviceOSType -eq "Windows"', {"deviceOSType": "Windows"}, {}),
    ('device.deviceOSType -eq "AndroidAOSP"', {}, {"deviceOSType": "Android"}),
    ('device.deviceOSVersion -eq "9.1"', {"deviceOSVersion": "9.1"}, {}),
    (
        'device.deviceOSVersion -startsWith "10.0.1"',
        {"deviceOSVersion": "10.0.19045"},
        {"deviceOSVersion": "10.0.22631"},
    ),
    (
        '(device.deviceOSVersion -startsWith "10.0.1")',
        {"deviceOSVersion": "10.0.17763"},
        {},
    ),
    ('device.deviceOwnership -eq "Company"', {}, {"deviceOwnership": "Personal"}),
    (
        'device.devicePhysicalIDs -any _ -startsWith "[ZTDId]"',
        {"devicePhysicalIds": ["[ZTDId]:1234", "[OrderID]:x"]},
        {},
    ),
    (
        '(device.devicePhysicalIds -any _ -eq "[OrderID]:179887111881")',
        {"devicePhysicalIds": ["[OrderID]:179887111881"]},
        {"devicePhysicalIds": ["[OrderID]:1798871118810"]},
    ),
    (
        '(device.devicePhysicalIds -any _ -eq "[PurchaseOrderId]:76222342342")',
        {"devicePhysicalIds": ["[PurchaseOrderId]:76222342342"]},
        {"devicePhysicalIds": None},
    ),
    ('device.deviceTrustType -eq "AzureAD"', {"deviceTrustType": "AzureAD"}, {}),
    (
        'device.enrollmentProfileName -eq "DEP iPhones"',
        {"enrollmentProfileName": "DEP iPhones"},
        {},
    ),
    ('(device.enrollmentProfileName -eq "Factory 1 devices")', {}, {"enrollmentProfileName": "F2"}),
    *(
        (
            f'device.extensionAttribute{i} -eq "some string value"',
            {f"extensionAttribute{i}": "some string value"},
            {f"extensionAttribute{i}": "some other value"},
        )
        for i in range(1, 16)
    ),
    ("device.isRooted -eq true", {"isRooted": True}, {}),
    ('device.managementType -eq "MDM"', {}, {"managementType": "EAS"}),
    (
        'device.objectId -eq "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"',
        {"objectId": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"},
        {},
    ),
    ('device.profileType -eq "RegisteredDevice"', {}, {"profileType": "Printer"}),
    ('device.systemLabels -startsWith "M365Managed"', {"systemLabels": ["M365ManagedX"]}, {}),
    ('device.systemLabels -contains "M365Managed"', {"systemLabels": ["a", "xM365Managed"]}, {}),
    # The "All devices" rule.
    ("device.objectId -ne null", {}, {"objectId": None}),
    # The generic syntax examples, on a device property.
    ('device.displayName -match "^Da.*"', {"displayName": "David"}, {"displayName": "aDa"}),
    ('device.displayName -match "^Da.*"', {"displayName": "Da"}, {"displayName": "aDa"}),
    ('device.displayName -match "^Da.*"', {"displayName": "Dav"}, {"displayName": "aDa"}),
    ('device.displayName -match ".*vid"', {"displayName": "David"}, {"displayName": "Da"}),
    (
        'device.deviceCategory -in ["50001","50002","50003","50005","50006","50007","50008",'
        '"50016","50020","50024","50038","50039","51100"]',
        {"deviceCategory": "50024"},
        {"deviceCategory": "50004"},
    ),
    (
        'device.deviceCategory -notin ["Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt"]',
        {"deviceCategory": "Accra"},
        {"deviceCategory": "port harcourt"},
    ),
    ("device.deviceCategory \u2013ne null", {"deviceCategory": "x"}, {}),
    (
        'device.deviceOSType \u2013eq "AndroidAOSP" '
        '\u2013and device.deviceOwnership \u2013eq "Company"',
        {},
        {"deviceOwnership": "Personal"},
    ),
    (
        'device.deviceOwnership \u2013eq "Company" \u2013and (device.deviceCategory \u2013eq "Scan"'
        ' \u2013or device.deviceCategory \u2013eq "Kiosk")',
        {"deviceCategory": "Kiosk"},
        {"deviceCategory": None},
    ),
    (
        '(device.deviceCategory -eq "Sales") -and -not (device.displayName -startsWith "SDE")',
        {"deviceCategory": "Sales"},
        {"deviceCategory": "Sales", "displayName": "SDE-7"},
    ),
    (
        '(device.devicePhysicalIds -any (_ -startsWith "contoso"))',
        {"devicePhysicalIds": ["Contoso:1"]},
        {},
    ),
    (
        '(device.deviceOSType -eq "AndroidEnterprise") and (device.enrollmentProfileName -eq Null)',
        {"deviceOSType": "AndroidEnterprise", "enrollmentProfileName": None},
        {"deviceOSType": "AndroidEnterprise"},
    ),
    (
        'device.deviceCategory -eq `"Sales`"'.replace('`"Sales`"', '"`"Sales`""'),
        {"deviceCategory": '"Sales"'},
        {"deviceCategory": "Sales"},
    ),
    ("device.deviceCategory -eq 'O''Brien'", {"deviceCategory": "O'Brien"}, {}),
]


@pytest.mark.parametrize(("text", "match", "no_match"), DOCUMENTED)
def test_documented_examples(text: str, match: dict[str, Any], no_match: dict[str, Any]) -> None:
    rule = parse(text)
    assert rule.matches(device(**match)) is True
    assert rule.matches(device(**no_match)) is False
    assert parse(str(rule)) == rule


def test_documented_typos_are_refused() -> None:
    # Entra's device table drops a closing parenthesis and leaves a stray word in two cells.
    with pytest.raises(RuleError, match="Unbalanced parentheses"):
        parse('(device.devicePhysicalIds -any _ -eq "[OrderID]:179887111881"')
    with pytest.raises(RuleError, match="Expected -and or -or"):
        parse('device.systemLabels -startsWith "M365Managed" SystemLabels')


def error(text: str) -> tuple[str, int]:
    with pytest.raises(RuleError) as info:
        parse(text)
    assert isinstance(info.value, ValueError)
    return info.value.message, info.value.position


LONG = 'device.displayName -eq "' + "x" * 3040 + '"'


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ('device.color -eq "red"', "Attribute not supported: device.color", 0),
        ('deviceModel -eq "x"', "Attribute not supported: deviceModel", 0),
        ('device.memberOf -any (group.objectId -in ["value"])', "Attribute not supported", 0),
        (
            'device.deviceModel -eq "a" -and user.department -eq "Sales"',
            "Attribute not supported: user.department (a device rule can use only device",
            32,
        ),
        ('device.isRooted -contains "x"', "Operator isn't supported on attribute: -contains", 16),
        ("device.accountEnabled -startsWith true", "Operator isn't supported on attribute", 22),
        ('device.deviceModel -any (_ -eq "a")', "Operator isn't supported on attribute: -any", 19),
        ('device.deviceModel -le "a"', "Operator isn't supported on attribute: -le", 19),
        ('device.deviceModel -like "a"', "Unknown operator '-like'", 19),
        (
            'device.deviceModel -eq "a" device.deviceOSType -eq "b"',
            "Expected -and or -or before 'device.deviceOSType'",
            27,
        ),
        (
            '(device.deviceModel -eq "a") (device.deviceOSType -eq "b")',
            "Expected -and or -or before '('",
            29,
        ),
        ('device.deviceModel -match "a("', "Invalid regular expression", 26),
        ('device.deviceModel -notMatch "[a"', "Invalid regular expression", 29),
        ('(device.deviceModel -eq "a"', "Unbalanced parentheses: '(' is never closed", 0),
        ('((device.deviceModel -eq "a")', "Unbalanced parentheses: '(' is never closed", 0),
        ('device.deviceModel -eq "a")', "Unbalanced parentheses: ')' has no matching '('", 26),
        ('device.deviceModel -eq "a', "Unbalanced quotes", 23),
        ("device.deviceModel -eq 'a''", "Unbalanced quotes", 23),
        ("device.deviceModel -eq", "Missing value after -eq", 22),
        ('device.deviceModel -eq -and device.deviceOSType -eq "b"', "Missing value after -eq", 23),
        ("(device.deviceModel -eq)", "Missing value after -eq", 23),
        ("device.deviceModel -in", "Missing value after -in", 22),
        ('device.deviceModel -in "a"', "Expected a list", 23),
        ('device.deviceModel -in ["a" "b"]', "Expected ',' or ']'", 28),
        ('device.deviceModel -in ["a",', "Unbalanced brackets", 28),
        ("device.deviceModel", "Expected an operator such as -eq after device.deviceModel", 18),
        ("", "Expected a property such as device.displayName", 0),
        ("   ", "Expected a property such as device.displayName", 3),
        ('device.deviceModel -eq "a" -and', "Expected a property such as device.displayName", 31),
        ("device.deviceModel -eq Samsung", "Expected a value (a string in quotes", 23),
        ("device.deviceModel -eq true", "device.deviceModel holds strings", 23),
        ('device.isRooted -eq "yes"', "device.isRooted is a bool", 20),
        ("device.deviceModel -startsWith null", "null can be compared only with -eq or -ne", 31),
        ("device.deviceModel -not null", "Unknown operator '-not'", 19),
        ('_ -eq "a"', "'_' can only be used inside -any or -all", 0),
        (
            'device.systemLabels -any (device.deviceModel -eq "a")',
            "Expected _ inside -any/-all, found 'device.deviceModel'",
            26,
        ),
        ('device.systemLabels -any "a"', "Expected (_ ...) or _ after -any/-all", 25),
        ('device.deviceModel -eq "a" # x', "Unexpected character '#'", 27),
        ('device.deviceModel - eq "a"', "Expected an operator name after '-'", 19),
        (LONG + " " * 8, "The rule is longer than 3072 characters", 3072),
    ],
)
def test_invalid_rules(text: str, message: str, position: int) -> None:
    got_message, got_position = error(text)
    assert got_message.startswith(message), got_message
    assert got_position == position


def test_length_limit_is_inclusive() -> None:
    text = LONG + " " * (3072 - len(LONG))
    assert len(text) == 3072
    assert parse(text).matches({"displayName": "x" * 3040})


def test_error_str_names_position() -> None:
    with pytest.raises(RuleError, match=r"Attribute not supported: device\.x \(at position 0\)"):
        parse('device.x -eq "a"')


# Precedence: comparison, then -not, then -and, then -or; parentheses override.
A, B, C = (
    'device.extensionAttribute1 -eq "a"',
    'device.extensionAttribute2 -eq "b"',
    'device.extensionAttribute3 -eq "c"',
)


def attrs(a: bool, b: bool, c: bool) -> dict[str, Any]:
    return {
        "extensionAttribute1": "a" if a else "-",
        "extensionAttribute2": "b" if b else "-",
        "extensionAttribute3": "c" if c else "-",
    }


@pytest.mark.parametrize(
    ("text", "oracle"),
    [
        (f"{A} -or {B} -and {C}", lambda a, b, c: a or (b and c)),
        (f"{A} -and {B} -or {C}", lambda a, b, c: (a and b) or c),
        (f"({A} -or {B}) -and {C}", lambda a, b, c: (a or b) and c),
        (f"-not {A} -and {B}", lambda a, b, c: (not a) and b),
        (f"-not {A} -or {B}", lambda a, b, c: (not a) or b),
        (f"-not ({A} -or {B})", lambda a, b, c: not (a or b)),
        (f"not {A} and not {B} or {C}", lambda a, b, c: (not a and not b) or c),
        (f"-not -not {A}", lambda a, b, c: a),
        (f"{A} -and -not {B} -and {C}", lambda a, b, c: a and not b and c),
        (f"{A} -or -not ({B} -and {C})", lambda a, b, c: a or not (b and c)),
    ],
)
def test_precedence(text: str, oracle: Any) -> None:
    rule = parse(text)
    for a in (False, True):
        for b in (False, True):
            for c in (False, True):
                assert rule.matches(attrs(a, b, c)) is oracle(a, b, c), (a, b, c)
    assert parse(str(rule)) == rule


def test_precedence_tree() -> None:
    rule = parse(f"{A} -or {B} -and -not {C}")
    assert isinstance(rule.expr, Or)
    left, right = rule.expr.items
    assert isinstance(left, Comparison)
    assert isinstance(right, And)
    assert isinstance(right.items[1], Not)
    assert str(rule) == f"{A} -or {B} -and -not {C}"
    assert str(parse(f"({A} -or {B}) -and {C}")) == f"({A} -or {B}) -and {C}"


NULL_CASES = [
    ("device.deviceCategory -eq null", True),
    ("device.deviceCategory -ne null", False),
    ('device.deviceCategory -eq "x"', False),
    ('device.deviceCategory -ne "x"', True),
    ('device.deviceCategory -startsWith ""', False),
    ('device.deviceCategory -notStartsWith "x"', True),
    ('device.deviceCategory -endsWith "x"', False),
    ('device.deviceCategory -notEndsWith "x"', True),
    ('device.deviceCategory -contains ""', False),
    ('device.deviceCategory -notContains "x"', True),
    ('device.deviceCategory -match ".*"', False),
    ('device.deviceCategory -notMatch "x"', True),
    ('device.deviceCategory -in ["x"]', False),
    ('device.deviceCategory -notIn ["x"]', True),
    ("device.isRooted -eq true", False),
    ("device.isRooted -eq false", False),
    ("device.isRooted -ne true", True),
    ("device.isRooted -eq null", True),
    ('device.systemLabels -contains "x"', False),
    ('device.systemLabels -notContains "x"', True),
    ("device.systemLabels -eq null", True),
    ("device.systemLabels -ne null", False),
    ('device.systemLabels -any _ -eq "x"', False),
    ('device.systemLabels -all _ -eq "x"', True),
]


@pytest.mark.parametrize(("text", "expected"), NULL_CASES)
def test_null_is_two_valued(text: str, expected: bool) -> None:
    rule = parse(text)
    prop = next(iter(rule.properties))
    assert rule.matches({}) is expected  # missing key
    assert rule.matches({prop: None}) is expected
    if DEVICE_PROPERTIES[prop.lower()].type is PropertyType.COLLECTION:
        assert rule.matches({prop: []}) is expected  # empty is null
    # -not flips every case: no third value.
    assert parse(f"-not ({text})").matches({}) is not expected


def test_empty_string_is_not_null() -> None:
    assert parse('device.deviceCategory -eq ""').matches({"deviceCategory": ""})
    assert not parse("device.deviceCategory -eq null").matches({"deviceCategory": ""})
    assert parse("device.deviceCategory -eq NULL").matches({"deviceCategory": None})
    assert parse('device.deviceCategory -eq "null"').matches({"deviceCategory": "NULL"})
    assert not parse('device.deviceCategory -eq "null"').matches({"deviceCategory": None})


def test_case_insensitive_names_operators_and_keywords() -> None:
    rule = parse(
        'DEVICE.ISROOTED -EQ TRUE -AND Device.DeviceModel -STARTSWITH "x" '
        "OR device.deviceModel EQ NuLl"
    )
    assert str(rule) == (
        'device.isRooted -eq true -and device.deviceModel -startsWith "x" '
        "-or device.deviceModel -eq null"
    )
    assert rule.matches({"ISROOTED": True, "devicemodel": "XY"})
    assert rule.matches({})
    assert not rule.matches({"isRooted": False, "deviceModel": "x"})


def test_operators_without_hyphen_and_with_en_dash() -> None:
    plain = parse('device.deviceModel -eq "a" -and -not device.isRooted -eq true')
    for text in [
        'device.deviceModel eq "a" and not device.isRooted eq true',
        'device.deviceModel \u2013eq "a" \u2013and \u2013not device.isRooted \u2013eq true',
        'device.deviceModel -eq"a" -and -not(device.isRooted -eq true)',
    ]:
        assert parse(text) == plain


def test_newlines_and_tabs_are_whitespace() -> None:
    rule = parse('(device.deviceModel -eq "a")\n-or\r\n\t(device.deviceModel -eq "b")')
    assert rule.matches({"deviceModel": "B"})


def test_quotes_and_escapes() -> None:
    assert parse('device.displayName -eq "say `"hi`""').matches({"displayName": 'say "hi"'})
    assert parse("device.displayName -eq 'it''s'").matches({"displayName": "it's"})
    assert parse("device.displayName -eq 'say \"hi\"'").matches({"displayName": 'say "hi"'})
    assert parse('device.displayName -eq "it\'s"').matches({"displayName": "it's"})
    # A backtick before anything but a double quote is itself.
    assert parse('device.displayName -eq "a`b"').matches({"displayName": "a`b"})
    rule = parse('device.displayName -in [\'a`\', "b`""]')
    assert rule.matches({"displayName": "a`"}) and rule.matches({"displayName": 'b"'})
    assert parse(str(rule)) == rule


def test_unicode_case_folding() -> None:
    assert parse('device.displayName -eq "STRASSE"').matches({"displayName": "straße"})
    assert parse('device.displayName -eq "straße"').matches({"displayName": "STRASSE"})
    assert parse('device.displayName -contains "ss"').matches({"displayName": "Maß"})
    sisyphus = "\u03c3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2"
    assert parse(f'device.displayName -eq "{sisyphus.upper()}"').matches({"displayName": sisyphus})
    assert parse('device.displayName -startsWith "k"').matches({"displayName": "\u212aelvin"})
    assert parse('device.displayName -in ["ÉCOLE"]').matches({"displayName": "école"})
    assert not parse('device.displayName -eq "e"').matches({"displayName": "é"})


def test_match_is_an_unanchored_case_insensitive_search() -> None:
    rule = parse('device.deviceModel -match "xcover"')
    assert rule.matches({"deviceModel": "Galaxy XCover 7"})
    assert not parse('device.deviceModel -match "^xcover"').matches(
        {"deviceModel": "Galaxy XCover"}
    )
    assert parse('device.deviceModel -notMatch "^\\d+$"').matches({"deviceModel": "A1"})
    assert not parse('device.deviceModel -notMatch "\\d"').matches({"deviceModel": "A1"})


def test_collections() -> None:
    labels = {"systemLabels": ["M365Managed", "Kiosk"]}
    assert parse('device.systemLabels -eq "kiosk"').matches(labels)
    assert parse('device.systemLabels -in ["a", "KIOSK"]').matches(labels)
    assert not parse('device.systemLabels -notIn ["a", "KIOSK"]').matches(labels)
    assert parse('device.systemLabels -notIn ["a", "b"]').matches(labels)
    assert not parse('device.systemLabels -ne "kiosk"').matches(labels)  # no element is
    assert parse('device.systemLabels -ne "other"').matches(labels)
    assert parse('device.systemLabels -match "^m365"').matches(labels)
    assert parse("device.systemLabels -ne null").matches(labels)
    assert parse('device.systemLabels -any (_ -eq "kiosk")').matches(labels)
    assert not parse('device.systemLabels -all (_ -eq "kiosk")').matches(labels)
    assert parse('device.systemLabels -all (_ -eq "kiosk" -or _ -startsWith "M365")').matches(
        labels
    )
    assert parse('device.systemLabels -all _ -ne "x"').matches(labels)
    assert parse('device.systemLabels -any (-not _ -contains "365")').matches(labels)
    assert parse('device.systemLabels -all ((_ -in ["kiosk", "m365managed"]))').matches(labels)
    assert parse('device.systemLabels -all (_ -eq "x")').matches({"systemLabels": []})
    # A single string where a list belongs is a one-element collection.
    assert parse('device.systemLabels -any _ -eq "a"').matches({"systemLabels": "A"})


def test_any_all_forms_are_equal() -> None:
    assert parse('device.systemLabels -any _ -eq "a"') == parse(
        'device.systemLabels -any (_ -eq "a")'
    )
    rule = parse('device.systemLabels -any _ -eq "a" -and device.isRooted -eq false')
    assert isinstance(rule.expr, And)
    assert isinstance(rule.expr.items[0], Quantified)


def test_properties() -> None:
    rule = parse(
        'device.DEVICEMODEL -eq "a" -or (device.systemLabels -any _ -eq "b" '
        "-and -not device.isRooted -eq true)"
    )
    assert rule.properties == {"deviceModel", "systemLabels", "isRooted"}


def test_bool_accepts_quoted_true_false() -> None:
    assert parse('device.isRooted -eq "True"') == parse("device.isRooted -eq true")
    assert parse('device.accountEnabled -ne "false"').matches({"accountEnabled": True})


EITHER = 'device.isRooted -eq true -or device.systemLabels -any (_ -eq "x")'


def test_explain() -> None:
    rule = parse(
        '(device.deviceModel -startsWith "Galaxy") -and -not (device.isRooted -eq true '
        '-or device.systemLabels -any _ -eq "x")'
    )
    details = rule.explain(DEVICE)
    assert details == {
        "expression": str(rule),
        "expressionResult": True,
        "expressionEvaluationDetails": [
            {
                "expression": 'device.deviceModel -startsWith "Galaxy"',
                "expressionResult": True,
                "expressionEvaluationDetails": [],
                "propertyToEvaluate": {
                    "propertyName": "deviceModel",
                    "propertyValue": "Galaxy XCover 7",
                },
            },
            {
                "expression": "-not (" + EITHER + ")",
                "expressionResult": True,
                "expressionEvaluationDetails": [
                    {
                        "expression": EITHER,
                        "expressionResult": False,
                        "expressionEvaluationDetails": [
                            {
                                "expression": "device.isRooted -eq true",
                                "expressionResult": False,
                                "expressionEvaluationDetails": [],
                                "propertyToEvaluate": {
                                    "propertyName": "isRooted",
                                    "propertyValue": "false",
                                },
                            },
                            {
                                "expression": 'device.systemLabels -any (_ -eq "x")',
                                "expressionResult": False,
                                "expressionEvaluationDetails": [],
                                "propertyToEvaluate": {
                                    "propertyName": "systemLabels",
                                    "propertyValue": "[]",
                                },
                            },
                        ],
                        "propertyToEvaluate": None,
                    }
                ],
                "propertyToEvaluate": None,
            },
        ],
        "propertyToEvaluate": None,
    }
    leaf = parse('device.displayName -startsWith "EndTest"').explain({"displayName": None})
    assert leaf["expressionResult"] is False
    assert leaf["propertyToEvaluate"] == {"propertyName": "displayName", "propertyValue": None}


# ---- property tests over generated rules ----

STRING_PROPS = sorted(p.name for p in DEVICE_PROPERTIES.values() if p.type is PropertyType.STRING)
BOOL_PROPS = sorted(p.name for p in DEVICE_PROPERTIES.values() if p.type is PropertyType.BOOL)
COLLECTION_PROPS = sorted(
    p.name for p in DEVICE_PROPERTIES.values() if p.type is PropertyType.COLLECTION
)
# Characters that stress quoting, LIKE escaping and case folding (sharp s, long s, Kelvin
# sign, dotted I, ligatures, final sigma).
ALPHABET = "aAbBkKsS1 ._%\\/'\"`[]:ß\u017f\u212aİ\u0131éÉﬀΣ\u03c3\u03c2"
POOL = [
    "",
    "a",
    "A",
    "ab",
    "AB",
    "b",
    "k",
    "ss",
    "SS",
    "ß",
    "\u017f",
    "\u212a",
    "é",
    "É",
    "x%",
    "x_y",
    "a\\b",
    "i",
    "İ",
    "ﬀ",
    "ff",
]
STRINGS = st.sampled_from(POOL) | st.text(ALPHABET, max_size=5)
REGEXES = st.sampled_from(["a", "^a", "b$", "a.*b", "[ab]+", "^$", "ss", "ß", "k", "\\d", "é"])
STRING_OPS = [
    "eq",
    "ne",
    "startsWith",
    "notStartsWith",
    "endsWith",
    "notEndsWith",
    "contains",
    "notContains",
]


@st.composite
def operator(draw: st.DrawFn, name: str) -> str:
    """An operator as admins type it: any case, hyphen, en dash or none."""
    dash = draw(st.sampled_from(["-", "-", "\u2013", ""]))
    spelled = draw(st.sampled_from([name, name.lower(), name.upper()]))
    return f" {dash}{spelled} "


@st.composite
def string_literal(draw: st.DrawFn, strings: st.SearchStrategy[str] = STRINGS) -> str:
    value = draw(strings)
    if "`" not in value and draw(st.booleans()):
        return '"' + value.replace('"', '`"') + '"'
    return "'" + value.replace("'", "''") + "'"


@st.composite
def string_comparison(draw: st.DrawFn, left: str) -> str:
    kind = draw(st.sampled_from(["plain", "plain", "match", "in", "null"]))
    if kind == "plain":
        op = draw(st.sampled_from(STRING_OPS))
        return left + draw(operator(op)) + draw(string_literal())
    if kind == "match":
        op = draw(st.sampled_from(["match", "notMatch"]))
        return left + draw(operator(op)) + draw(string_literal(REGEXES))
    if kind == "in":
        op = draw(st.sampled_from(["in", "notIn"]))
        items = draw(st.lists(string_literal(), max_size=3))
        return left + draw(operator(op)) + "[" + ", ".join(items) + "]"
    op = draw(st.sampled_from(["eq", "ne"]))
    return left + draw(operator(op)) + draw(st.sampled_from(["null", "NULL", "Null"]))


@st.composite
def prop_name(draw: st.DrawFn, names: list[str]) -> str:
    name = draw(st.sampled_from(names))
    return draw(st.sampled_from(["device.", "Device.", "DEVICE."])) + draw(
        st.sampled_from([name, name.lower()])
    )


def element_body() -> st.SearchStrategy[str]:
    leaf = string_comparison("_")
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from([" -and ", " -or ", " or "]), inner).map(
                lambda t: f"({t[0]}{t[1]}{t[2]})"
            ),
            inner.map(lambda s: f"-not ({s})"),
        ),
        max_leaves=3,
    )


@st.composite
def comparison(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["string", "string", "string", "bool", "collection", "quantified"]))
    if kind == "string":
        return draw(string_comparison(draw(prop_name(STRING_PROPS))))
    if kind == "bool":
        value = draw(st.sampled_from(["true", "false", "null", "TRUE", '"false"']))
        return (
            draw(prop_name(BOOL_PROPS))
            + draw(operator(draw(st.sampled_from(["eq", "ne"]))))
            + value
        )
    left = draw(prop_name(COLLECTION_PROPS))
    if kind == "collection":
        return draw(string_comparison(left))
    quantifier = draw(operator(draw(st.sampled_from(["any", "all"]))))
    body = draw(element_body())
    if not body.startswith("(") and draw(st.booleans()):
        return (
            f"{left}{quantifier}{body}"
            if not body.startswith("-")
            else f"{left}{quantifier}({body})"
        )
    return f"{left}{quantifier}({body})"


RULES = st.recursive(
    comparison(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: " -and ".join(xs)),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: " -or ".join(xs)),
        inner.map(lambda s: f"({s})"),
        inner.map(lambda s: f"-not ({s})"),
    ),
    max_leaves=6,
)


@st.composite
def devices(draw: st.DrawFn) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(STRING_PROPS), max_size=6, unique=True)):
        props[name] = draw(st.none() | STRINGS)
    for name in BOOL_PROPS:
        props[name] = draw(st.none() | st.booleans())
    for name in COLLECTION_PROPS:
        props[name] = draw(st.none() | st.lists(STRINGS, max_size=3))
    if draw(st.booleans()):  # keys in any case
        props = {k.upper() if draw(st.booleans()) else k: v for k, v in props.items()}
    return props


@settings(max_examples=300, deadline=None)
@given(RULES, devices())
def test_generated_rules_round_trip_and_evaluate(text: str, props: dict[str, Any]) -> None:
    rule = parse(text)
    again = parse(str(rule))
    assert again == rule
    assert str(again) == str(rule)
    result = rule.matches(props)
    assert isinstance(result, bool)
    assert again.matches(props) is result
    details = rule.explain(props)
    assert details["expressionResult"] is result
    assert parse(f"-not ({text})").matches(props) is not result


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("device.Model_ -eqand()[],\"'`\u2013nul")), max_size=40)
)
def test_any_text_parses_or_raises_rule_error(text: str) -> None:
    try:
        rule = parse(text)
    except RuleError as e:
        assert 0 <= e.position <= len(text)
    else:
        assert parse(str(rule)) == rule
        assert isinstance(rule.matches({}), bool)


def test_all_documented_properties_are_supported() -> None:
    names = {p.name for p in DEVICE_PROPERTIES.values()}
    assert names == {
        "accountEnabled", "deviceCategory", "deviceId", "deviceManufacturer", "deviceModel",
        "displayName", "deviceOSType", "deviceOSVersion", "deviceOwnership",
        "deviceManagementAppId", "devicePhysicalIds", "deviceTrustType",
        "enrollmentProfileName", *(f"extensionAttribute{i}" for i in range(1, 16)),
        "isRooted", "managementType", "objectId", "profileType", "systemLabels",
    }  # fmt: skip
    assert re.fullmatch(r"[a-z]\w+", "isRooted")
    assert isinstance(parse("device.isRooted -eq true"), Rule)
