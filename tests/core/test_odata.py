"""The $filter parser: every input either compiles or is a 400 naming $filter."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
)

from aospmdm.core.errors import BadRequest
from aospmdm.core.odata import Field, compile_filter, parse_query

meta = MetaData()
things = Table(
    "things",
    meta,
    Column("id", Integer, primary_key=True),
    Column("name", String),
    Column("on", Boolean),
    Column("n", Integer),
    Column("at", DateTime),
)
FIELDS = {
    "name": Field(things.c.name),
    "on": Field(things.c.on, "bool"),
    "n": Field(things.c.n, "int"),
    "at": Field(things.c.at, "datetime"),
}
ROWS = [
    {"id": 1, "name": "Factory 1", "on": True, "n": 1, "at": datetime(2026, 1, 1)},
    {"id": 2, "name": "factory 2", "on": False, "n": 2, "at": datetime(2026, 6, 1)},
    {"id": 3, "name": "O'Brien", "on": True, "n": 3, "at": None},
]


@pytest.fixture(scope="module")
def db():  # type: ignore[no-untyped-def]
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(things), ROWS)
    return engine


def ids(db, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    with db.connect() as conn:
        stmt = select(things.c.id).where(compile_filter(text, FIELDS)).order_by(things.c.id)
        return [r[0] for r in conn.execute(stmt)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name eq 'Factory 1'", [1]),
        ("Name EQ 'Factory 1'", [1]),
        ("name eq 'O''Brien'", [3]),
        ("startswith(name, 'fac')", [1, 2]),
        ("endswith(name, '2')", [2]),
        ("contains(name, '%')", []),
        ("on eq true and n ge 2", [3]),
        ("not (on eq true)", [2]),
        ("n gt 1 or name eq 'Factory 1'", [1, 2, 3]),
        ("n in (1, 3)", [1, 3]),
        ("at eq null", [3]),
        ("at ne null", [1, 2]),
        ("at lt 2026-03-01T00:00:00Z", [1]),
        ("at ge '2026-03-01T00:00:00Z'", [2]),
        ("(n eq 1 or n eq 2) and on eq false", [2]),
    ],
)
def test_filters_select_the_right_rows(db, text: str, expected: list[int]) -> None:  # type: ignore[no-untyped-def]
    assert ids(db, text) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=60)
    | st.lists(
        st.sampled_from(
            [
                "name",
                "on",
                "n",
                "at",
                "eq",
                "ne",
                "gt",
                "and",
                "or",
                "not",
                "(",
                ")",
                ",",
                "'x'",
                "1",
                "true",
                "null",
                "in",
                "startswith",
                "2026-01-01T00:00Z",
                "nosuch",
                "'",
                "/",
            ]
        ),
        max_size=12,
    ).map(" ".join)
)
def test_any_text_compiles_or_is_a_400(db, text: str) -> None:  # type: ignore[no-untyped-def]
    try:
        ids(db, text)
    except BadRequest as exc:
        assert exc.target == "$filter"


def test_query_option_limits() -> None:
    assert parse_query({}).top == 100
    assert parse_query({"$top": "999", "$skip": "5"}).skip == 5
    with pytest.raises(BadRequest):
        parse_query({"$top": "99999999999"})
