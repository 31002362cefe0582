"""The rule-to-SQL compiler on SQLite and PostgreSQL: its candidates always include every
device the evaluator matches, and filtering them with the evaluator gives exactly its set."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    insert,
    literal,
    select,
)

from aospmdm.groups.rules import (
    DEVICE_PROPERTIES,
    ExistsCollection,
    ExpressionCollection,
    PropertyType,
    Rule,
    parse,
)
from tests.groups.test_rules import RULES, devices

_ids = itertools.count()


class Scratch:
    """A throwaway device table (one column per string/bool property) and a child table of
    collection elements, so these tests need no real device table."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.metadata = MetaData()
        n = next(_ids)
        self.devices = Table(
            f"rules_scratch_device_{n}",
            self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=False),
            *(
                Column(p.name.lower(), Boolean if p.type is PropertyType.BOOL else String(64))
                for p in DEVICE_PROPERTIES.values()
                if p.type is not PropertyType.COLLECTION
            ),
        )
        self.elements = Table(
            f"rules_scratch_element_{n}",
            self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("device_id", ForeignKey(self.devices.c.id), index=True),
            Column("name", String(32)),
            Column("value", String(64)),
        )
        self.columns: dict[str, Any] = {}
        for p in DEVICE_PROPERTIES.values():
            if p.type is PropertyType.COLLECTION:
                self.columns[p.name] = ExistsCollection(
                    self.elements.c.value,
                    and_(
                        self.elements.c.device_id == self.devices.c.id,
                        self.elements.c.name == p.name,
                    ),
                )
            else:
                self.columns[p.name] = self.devices.c[p.name.lower()]

    def load(self, fleet: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the rows with these devices; returns them as the evaluator sees them."""
        rows, elements, facts = [], [], []
        for i, props in enumerate(fleet):
            lowered = {k.lower(): v for k, v in props.items()}
            row: dict[str, Any] = {"id": i}
            fact: dict[str, Any] = {}
            for p in DEVICE_PROPERTIES.values():
                value = lowered.get(p.name.lower())
                fact[p.name] = value
                if p.type is PropertyType.COLLECTION:
                    for v in value or []:
                        elements.append({"device_id": i, "name": p.name, "value": v})
                else:
                    row[p.name.lower()] = value
            rows.append(row)
            facts.append(fact)
        with self.engine.begin() as conn:
            conn.execute(delete(self.elements))
            conn.execute(delete(self.devices))
            if rows:
                conn.execute(insert(self.devices), rows)
            if elements:
                conn.execute(insert(self.elements), elements)
        return facts

    def candidates(self, rule: Rule) -> set[int]:
        query = select(self.devices.c.id).where(rule.to_sql(self.columns))
        with self.engine.connect() as conn:
            return set(conn.scalars(query))

    def sure(self, rule: Rule) -> set[int]:
        """Rows the tighter bound selects: the ones the database decided are members."""
        _upper, lower = rule.sql_bounds(self.columns)
        with self.engine.connect() as conn:
            return set(conn.scalars(select(self.devices.c.id).where(lower)))


@pytest.fixture
def scratch(engine: Engine) -> Iterator[Scratch]:
    s = Scratch(engine)
    s.metadata.create_all(engine)
    yield s
    s.metadata.drop_all(engine)


def check(scratch: Scratch, rule: Rule, fleet: list[dict[str, Any]]) -> tuple[set[int], set[int]]:
    facts = scratch.load(fleet)
    matching = {i for i, f in enumerate(facts) if rule.matches(f)}
    # The original keys (any case) and the stored row agree.
    assert matching == {i for i, props in enumerate(fleet) if rule.matches(props)}
    candidates = scratch.candidates(rule)
    assert matching <= candidates, (str(rule), matching - candidates)
    sure = scratch.sure(rule)
    assert sure <= matching, (str(rule), sure - matching)
    assert {i for i in candidates if rule.matches(facts[i])} == matching
    return matching, candidates


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(RULES, st.lists(devices(), min_size=1, max_size=6))
# -all is "no element fails": its superset needs each element's superset, not its subset.
@example(text="device.devicePhysicalIds -all (_ -ne '')", fleet=[{"devicePhysicalIds": ["ß"]}])
def test_sql_selects_a_superset_and_the_evaluator_decides(
    scratch: Scratch, text: str, fleet: list[dict[str, Any]]
) -> None:
    check(scratch, parse(text), fleet)


FLEET = [
    {"displayName": "Factory1-0001", "deviceModel": "XCover 7", "isRooted": False,
     "systemLabels": ["Kiosk", "M365Managed"], "devicePhysicalIds": ["[SerialNumber]:R58N1"]},
    {"displayName": "factory1-0002", "deviceModel": "TC52", "isRooted": True,
     "systemLabels": ["kiosk"]},
    {"displayName": "Lab 100%", "deviceModel": None, "isRooted": None, "systemLabels": []},
    {"displayName": "lab_1", "deviceModel": "x_y", "extensionAttribute1": "a\\b"},
    {"displayName": "STRASSE", "deviceModel": "Straße"},
    {"displayName": "\u212aiosk", "deviceModel": "\u017fs"},
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected", "exact"),
    [
        ('device.displayName -startsWith "FACTORY1-"', {0, 1}, False),
        ('device.displayName -contains "100%"', {2}, False),
        ('device.displayName -contains "b%"', set(), False),
        ('device.displayName -endsWith "_1"', {3}, False),
        ('device.extensionAttribute1 -eq "A\\B"', {3}, True),
        ("device.deviceModel -eq null", {2}, True),
        ('device.deviceModel -ne "tc52"', {0, 2, 3, 4, 5}, True),
        ("device.isRooted -ne true", {0, 2, 3, 4, 5}, True),
        ("device.isRooted -eq false", {0}, True),
        ('device.systemLabels -eq "KIOSK"', {0, 1}, True),
        ('device.systemLabels -notContains "kiosk"', {2, 3, 4, 5}, True),
        ('device.systemLabels -all (_ -eq "kiosk")', {1, 2, 3, 4, 5}, True),
        ('device.systemLabels -any (_ -startsWith "m365")', {0}, True),
        ("device.systemLabels -eq null", {2, 3, 4, 5}, True),
        ('device.devicePhysicalIds -any _ -startsWith "[SerialNumber]:"', {0}, True),
        ('device.displayName -eq "straße"', {4}, False),
        ('device.displayName -startsWith "k"', {5}, False),
        ('device.deviceModel -contains "ss"', {4, 5}, False),
        ('device.displayName -match "^lab"', {2, 3}, False),
    ],
)
def test_known_fleet(scratch: Scratch, text: str, expected: set[int], exact: bool) -> None:
    matching, candidates = check(scratch, parse(text), FLEET)
    assert matching == expected
    if exact:
        assert candidates == matching


def test_ascii_rules_on_ascii_data_are_exact(scratch: Scratch) -> None:
    # Without regexes or non-ASCII text the database decides alone: no extra candidates.
    rule = parse(
        '(device.displayName -startsWith "factory" -or device.deviceModel -in ["tc52", "x_y"]) '
        '-and -not device.systemLabels -any (_ -eq "M365MANAGED") -and device.isRooted -ne false'
    )
    fleet = [f for f in FLEET if all(str(v).isascii() for v in f.values())]
    matching, candidates = check(scratch, rule, fleet)
    assert matching == candidates == {1, 3}


def test_unmapped_properties_compile_to_a_superset(scratch: Scratch) -> None:
    rule = parse('device.systemLabels -any _ -eq "kiosk" -and device.deviceModel -eq "tc52"')
    facts = scratch.load(FLEET)
    columns = {k: v for k, v in scratch.columns.items() if k != "systemLabels"}
    query = select(scratch.devices.c.id).where(rule.to_sql(columns))
    with scratch.engine.connect() as conn:
        # Devices with non-ASCII models stay candidates: long s and sharp s fold to ASCII.
        assert set(conn.scalars(query)) == {1, 4, 5}
    assert [rule.matches(f) for f in facts] == [False, True, False, False, False, False]
    negated = parse('-not device.systemLabels -any _ -eq "kiosk"')
    query = select(scratch.devices.c.id).where(negated.to_sql({}))
    with scratch.engine.connect() as conn:
        assert set(conn.scalars(query)) == set(range(len(FLEET)))


def test_collections_computed_from_the_device_row(scratch: Scratch) -> None:
    # devicePhysicalIds built from a column, systemLabels always empty: no child table.
    serial = scratch.devices.c.extensionattribute15
    columns = {
        **scratch.columns,
        "devicePhysicalIds": ExpressionCollection([literal("[SerialNumber]:") + serial]),
        "systemLabels": ExpressionCollection([]),
    }
    fleet = [{"extensionAttribute15": s} for s in ["R58N1", "r58n2", None, "ZZ"]]
    facts = scratch.load(fleet)
    for f in facts:
        s = f["extensionAttribute15"]
        f["devicePhysicalIds"] = [] if s is None else [f"[SerialNumber]:{s}"]
        f["systemLabels"] = []
    for text, expected in [
        ('device.devicePhysicalIds -any _ -startsWith "[serialnumber]:r58"', {0, 1}),
        ('device.devicePhysicalIds -eq "[SerialNumber]:ZZ"', {3}),
        ('device.devicePhysicalIds -all (_ -endsWith "1")', {0, 2}),
        ("device.devicePhysicalIds -eq null", {2}),
        ('device.systemLabels -notContains "x" -and device.systemLabels -eq null', {0, 1, 2, 3}),
        ('device.systemLabels -any _ -ne "x"', set()),
    ]:
        rule = parse(text)
        assert {i for i, f in enumerate(facts) if rule.matches(f)} == expected, text
        query = select(scratch.devices.c.id).where(rule.to_sql(columns))
        with scratch.engine.connect() as conn:
            assert set(conn.scalars(query)) == expected, text
