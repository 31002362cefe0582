"""Compiling a rule to a SQLAlchemy condition that selects a superset of the matching devices.

The database narrows; the evaluator decides. Each node compiles to two bounds: `upper` holds
for every device the rule matches (and maybe more), `lower` only for devices it matches (maybe
not all). `-not` swaps them. Where the database can decide exactly — ASCII text under
lower(), prefixes, suffixes, substrings, lists, bools, null checks — both bounds are the same
condition. Where it cannot — a regex, a value with non-ASCII characters that Unicode case
folding may change — upper is looser and lower tighter, down to true and false. Every
condition is two-valued (never SQL NULL), so `NOT` is safe.

Collections (devicePhysicalIds, systemLabels) are given as a `CollectionColumn`: an object
whose `any(condition)` returns "some element satisfies condition(element)", usually an
EXISTS over a child table (`ExistsCollection`), or expressions over the device row
(`ExpressionCollection`). A property missing from `columns` is
unknown to the database: it compiles to upper true, lower false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import Boolean, and_, exists, false, func, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from aospmdm.groups.rules.parser import And, Comparison, Expr, Not, Or, Quantified
from aospmdm.groups.rules.properties import NEGATIONS, PropertyType

Column = ColumnElement[Any] | QueryableAttribute[Any]
Condition = Callable[[ColumnElement[Any]], ColumnElement[bool]]
# A bound is a SQL condition or a constant, folded away before it reaches the database.
Bound = ColumnElement[bool] | bool


class CollectionColumn(Protocol):
    """A string collection of the device row, as the database sees it."""

    def any(self, condition: Condition) -> ColumnElement[bool]:
        """True when some element satisfies condition(element); the element is never null."""
        ...


@dataclass(frozen=True)
class ExistsCollection:
    """A collection stored one element per row in a child table: EXISTS over those rows.

    `element` is the child table's value column; `correlation` ties a child row to the
    device row (and, if one table holds several collections, picks this one).
    """

    element: Column
    correlation: ColumnElement[bool]

    def any(self, condition: Condition) -> ColumnElement[bool]:
        element: ColumnElement[Any] = self.element  # type: ignore[assignment]
        return exists().where(self.correlation, condition(element))


@dataclass(frozen=True)
class ExpressionCollection:
    """A collection whose elements are SQL expressions over the device row itself, e.g.
    `[literal("[SerialNumber]:") + device.c.serial_number]`; an element that is NULL is
    absent. An empty list is an always-empty collection."""

    elements: Sequence[Column]

    def any(self, condition: Condition) -> ColumnElement[bool]:
        if not self.elements:
            return false()
        return or_(*(and_(e.is_not(None), condition(e)) for e in self.elements))  # type: ignore[arg-type]


class _NonAscii(FunctionElement[bool]):
    """True when a non-null string holds a character outside ASCII."""

    type = Boolean()
    inherit_cache = True
    name = "non_ascii"


@compiles(_NonAscii)
def _non_ascii(element: _NonAscii, compiler: SQLCompiler, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"(length({arg}) <> octet_length({arg}))"


@compiles(_NonAscii, "sqlite")
def _non_ascii_sqlite(element: _NonAscii, compiler: SQLCompiler, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    # SQLite's length() counts characters of text and bytes of a blob.
    return f"(length(CAST({arg} AS BLOB)) <> length({arg}))"


def to_sql(expr: Expr, columns: Mapping[str, Column | CollectionColumn]) -> ColumnElement[bool]:
    """A condition true for every row the expression matches (and perhaps others)."""
    upper, _ = _bounds(expr, _Device({k.lower(): v for k, v in columns.items()}))
    return _sql(upper)


def sql_bounds(
    expr: Expr, columns: Mapping[str, Column | CollectionColumn]
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(upper, lower): every match satisfies upper; every row satisfying lower matches, so
    only rows between the two need the evaluator."""
    upper, lower = _bounds(expr, _Device({k.lower(): v for k, v in columns.items()}))
    return _sql(upper), _sql(lower)


class _Device:
    """Comparisons on the device row's columns."""

    def __init__(self, columns: Mapping[str, Any]):
        self.columns = columns

    def column(self, c: Comparison | Quantified) -> Any:
        assert c.prop is not None
        return self.columns.get(c.prop.name.lower())

    def comparison(self, c: Comparison) -> tuple[Bound, Bound]:
        assert c.prop is not None
        column = self.column(c)
        if column is None:
            return True, False
        if c.prop.type is not PropertyType.COLLECTION:
            return _string_or_bool(column, c)
        coll: CollectionColumn = column
        if c.value is None:
            some = coll.any(lambda _: true())
            return (not_(some), not_(some)) if c.op == "eq" else (some, some)
        # A string operator on a collection: some element satisfies it; a negative one is
        # the negation of its positive twin.
        positive = NEGATIONS.get(c.op)
        twin = replace(c, op=positive) if positive else c
        upper = coll.any(lambda e: _sql(_string_or_bool(e, twin)[0]))
        lower: Bound = coll.any(lambda e: _sql(_string_or_bool(e, twin)[1]))
        return (_not(lower), _not(upper)) if positive else (upper, lower)


class _Element:
    """Comparisons on `_`, one element of a collection inside -any/-all."""

    def __init__(self, element: ColumnElement[Any]):
        self.element = element

    def comparison(self, c: Comparison) -> tuple[Bound, Bound]:
        return _string_or_bool(self.element, c)


def _bounds(expr: Expr, ctx: _Device | _Element) -> tuple[Bound, Bound]:
    match expr:
        case Comparison():
            return ctx.comparison(expr)
        case Quantified():
            assert isinstance(ctx, _Device)
            return _quantified(expr, ctx.column(expr))
        case And(items=items):
            pairs = [_bounds(i, ctx) for i in items]
            return _all([p[0] for p in pairs]), _all([p[1] for p in pairs])
        case Or(items=items):
            pairs = [_bounds(i, ctx) for i in items]
            return _any([p[0] for p in pairs]), _any([p[1] for p in pairs])
        case Not(item=item):
            upper, lower = _bounds(item, ctx)
            return _not(lower), _not(upper)
    raise TypeError(expr)  # pragma: no cover


def _quantified(q: Quantified, coll: CollectionColumn | None) -> tuple[Bound, Bound]:
    if coll is None:
        return True, False

    def upper_of(e: ColumnElement[Any]) -> Bound:
        return _bounds(q.body, _Element(e))[0]

    def lower_of(e: ColumnElement[Any]) -> Bound:
        return _bounds(q.body, _Element(e))[1]

    if q.quantifier == "any":
        return (
            coll.any(lambda e: _sql(upper_of(e))),
            coll.any(lambda e: _sql(lower_of(e))),
        )
    # all(body) is not any(not body); an empty collection passes.
    return (
        not_(coll.any(lambda e: _sql(_not(upper_of(e))))),
        not_(coll.any(lambda e: _sql(_not(lower_of(e))))),
    )


def _string_or_bool(column: Any, c: Comparison) -> tuple[Bound, Bound]:
    """Bounds of a comparison on a string (or bool) column, or on an element."""
    if c.value is None:
        is_null = column.is_(None)
        return (is_null, is_null) if c.op == "eq" else (not_(is_null), not_(is_null))
    positive = NEGATIONS.get(c.op)
    if positive is not None:
        upper, lower = _positive(column, positive, c)
        return _not(lower), _not(upper)
    return _positive(column, c.op, c)


def _positive(column: Any, op: str, c: Comparison) -> tuple[Bound, Bound]:
    if isinstance(c.value, bool):
        cond = and_(column.is_not(None), column == c.value)
        return cond, cond
    not_null = column.is_not(None)
    if op == "match":
        return not_null, False
    ascii_values = [v for v in c.folded if v.isascii()]
    lowered = func.lower(column)
    exact: Bound
    if op == "in":
        exact = lowered.in_(ascii_values) if ascii_values else False
    elif not ascii_values:
        exact = False
    elif op == "eq":
        exact = lowered == ascii_values[0]
    elif op == "startsWith":
        exact = lowered.startswith(ascii_values[0], autoescape=True)
    elif op == "endsWith":
        exact = lowered.endswith(ascii_values[0], autoescape=True)
    else:  # contains
        exact = lowered.contains(ascii_values[0], autoescape=True)
    non_ascii = _NonAscii(column)
    upper = _all([not_null, _any([exact, non_ascii])])
    lower = _all([not_null, not_(non_ascii), exact])
    return upper, lower


def _all(items: list[Bound]) -> Bound:
    if any(i is False for i in items):
        return False
    rest = [i for i in items if i is not True]
    if not rest:
        return True
    return rest[0] if len(rest) == 1 else and_(*rest)  # type: ignore[arg-type]


def _any(items: list[Bound]) -> Bound:
    if any(i is True for i in items):
        return True
    rest = [i for i in items if i is not False]
    if not rest:
        return False
    return rest[0] if len(rest) == 1 else or_(*rest)  # type: ignore[arg-type]


def _not(b: Bound) -> Bound:
    return (not b) if isinstance(b, bool) else not_(b)


def _sql(b: Bound) -> ColumnElement[bool]:
    if b is True:
        return true()
    if b is False:
        return false()
    return b
