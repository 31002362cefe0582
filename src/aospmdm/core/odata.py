"""The OData subset Graph clients use on lists: $filter, $top, $skip, $select, $count.

A resource declares the properties that may be filtered on (a field map from the Graph path,
such as ``actor/userPrincipalName``, to a column and a kind); $filter text is parsed here to a
SQLAlchemy expression over those columns, so filtering happens in the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from aospmdm.core.errors import BadRequest

Kind = Literal["str", "datetime", "bool", "int"]
MAX_TOP = 999
DEFAULT_TOP = 100
MAX_FILTER_LENGTH = 2048
KNOWN_OPTIONS = {"$filter", "$top", "$skip", "$select", "$count", "$orderby", "$search"}


@dataclass(frozen=True)
class Field:
    column: Any
    kind: Kind = "str"


@dataclass(frozen=True)
class Query:
    top: int = DEFAULT_TOP
    skip: int = 0
    filter: str | None = None
    select: tuple[str, ...] | None = None
    count: bool = False


def parse_query(params: Mapping[str, str]) -> Query:
    """Read the OData system query options, refusing unknown ones and bad numbers."""
    for key in params:
        if key.startswith("$") and key not in KNOWN_OPTIONS:
            raise BadRequest(f"Query option '{key}' is not supported.", target=key)
        if key in ("$orderby", "$search"):
            raise BadRequest(f"Query option '{key}' is not supported on this resource.", target=key)
    top = _int_option(params, "$top", DEFAULT_TOP, 1, MAX_TOP)
    skip = _int_option(params, "$skip", 0, 0, 10**9)
    select_ = params.get("$select")
    selected = tuple(s.strip() for s in select_.split(",") if s.strip()) if select_ else None
    count = params.get("$count", "false").lower()
    if count not in ("true", "false"):
        raise BadRequest("$count must be true or false.", target="$count")
    filt = params.get("$filter")
    if filt is not None and len(filt) > MAX_FILTER_LENGTH:
        raise BadRequest(
            f"$filter is longer than {MAX_FILTER_LENGTH} characters.", target="$filter"
        )
    return Query(top=top, skip=skip, filter=filt or None, select=selected, count=count == "true")


def _int_option(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,10}", raw.strip()):
        raise BadRequest(f"{name} must be a whole number.", target=name)
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}.", target=name)
    return value


# --- $filter -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<str>'(?:[^']|'')*')"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)"
    r")"
)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCS = {"startswith", "endswith", "contains"}


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise BadRequest(
                f"Invalid $filter: unexpected character at position {pos}.", target="$filter"
            )
        kind = m.lastgroup or ""
        start = m.start(kind)
        toks.append(_Tok(kind, m.group(kind), start))
        pos = m.end()
    return toks


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, Field]):
        self.toks = _lex(text)
        self.i = 0
        self.fields = {k.lower(): (k, v) for k, v in fields.items()}

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, wanted: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None:
            more = f": expected {wanted}" if wanted else ""
            raise BadRequest(f"Invalid $filter: it ends too early{more}.", target="$filter")
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take(f"'{text}'")
        if tok.text.lower() != text:
            raise self.error(tok, f"expected '{text}'")

    def error(self, tok: _Tok, what: str) -> BadRequest:
        return BadRequest(
            f"Invalid $filter: {what} at position {tok.pos} ('{tok.text}').", target="$filter"
        )

    def parse(self) -> ColumnElement[bool]:
        expr = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise self.error(tok, "unexpected text")
        return expr

    def or_expr(self) -> ColumnElement[bool]:
        parts = [self.and_expr()]
        while (tok := self.peek()) and tok.kind == "word" and tok.text.lower() == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else or_(*parts)

    def and_expr(self) -> ColumnElement[bool]:
        parts = [self.not_expr()]
        while (tok := self.peek()) and tok.kind == "word" and tok.text.lower() == "and":
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else and_(*parts)

    def not_expr(self) -> ColumnElement[bool]:
        tok = self.peek()
        if tok and tok.kind == "word" and tok.text.lower() == "not":
            self.take()
            return not_(self.not_expr())
        return self.primary()

    def field(self, tok: _Tok) -> tuple[str, Field]:
        if tok.kind != "word":
            raise self.error(tok, "expected a property name")
        found = self.fields.get(tok.text.lower())
        if found is None:
            raise BadRequest(
                f"Invalid $filter: property '{tok.text}' cannot be filtered on here.",
                target="$filter",
            )
        return found

    def primary(self) -> ColumnElement[bool]:
        tok = self.take()
        if tok.text == "(":
            expr = self.or_expr()
            self.expect(")")
            return expr
        if tok.kind == "word" and tok.text.lower() in _FUNCS:
            self.expect("(")
            name, fld = self.field(self.take())
            self.expect(",")
            value = self.literal(self.take(), name, fld)
            self.expect(")")
            if fld.kind != "str" or not isinstance(value, str):
                raise self.error(tok, f"{tok.text.lower()} needs a text property and text")
            col = func.lower(fld.column)
            needle = value.lower()
            fn = tok.text.lower()
            if fn == "startswith":
                return col.startswith(needle, autoescape=True)
            if fn == "endswith":
                return col.endswith(needle, autoescape=True)
            return col.contains(needle, autoescape=True)
        name, fld = self.field(tok)
        op = self.take()
        opname = op.text.lower()
        if opname == "in":
            self.expect("(")
            values = [self.literal(self.take(), name, fld)]
            while (nxt := self.peek()) and nxt.text == ",":
                self.take()
                values.append(self.literal(self.take(), name, fld))
            self.expect(")")
            return fld.column.in_(values)  # type: ignore[no-any-return]
        if op.kind != "word" or opname not in _COMPARE:
            raise self.error(op, "expected an operator (eq, ne, gt, ge, lt, le, in)")
        value = self.literal(self.take(), name, fld)
        col = fld.column
        if value is None:
            if opname == "eq":
                return col.is_(None)  # type: ignore[no-any-return]
            if opname == "ne":
                return col.is_not(None)  # type: ignore[no-any-return]
            raise self.error(op, "null can only be compared with eq or ne")
        if isinstance(value, bool) and opname not in ("eq", "ne"):
            raise self.error(op, "true and false can only be compared with eq or ne")
        result: ColumnElement[bool] = {
            "eq": lambda: col == value,
            "ne": lambda: col != value,
            "gt": lambda: col > value,
            "ge": lambda: col >= value,
            "lt": lambda: col < value,
            "le": lambda: col <= value,
        }[opname]()
        return result

    def literal(self, tok: _Tok, name: str, fld: Field) -> Any:
        if tok.kind == "word" and tok.text.lower() == "null":
            return None
        kind = fld.kind
        if kind == "str" and tok.kind == "str":
            return tok.text[1:-1].replace("''", "'")
        if kind == "bool" and tok.kind == "word" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        if kind == "int" and tok.kind == "num" and "." not in tok.text:
            return int(tok.text)
        if kind == "datetime" and tok.kind in ("dt", "str"):
            raw = tok.text.strip("'")
            try:
                value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise self.error(tok, f"'{name}' needs a date and time") from None
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        expected = {
            "str": "a quoted string",
            "bool": "true or false",
            "int": "a whole number",
            "datetime": "a date and time such as 2026-01-31T00:00:00Z",
        }[kind]
        raise self.error(tok, f"'{name}' needs {expected}")


def compile_filter(text: str, fields: Mapping[str, Field]) -> ColumnElement[bool]:
    """Parse OData $filter text to a SQL expression over the given fields."""
    return _Parser(text, fields).parse()


# --- paging --------------------------------------------------------------------------------


def page(
    session: Session,
    stmt: Select[Any],
    params: Mapping[str, str],
    render: Callable[[Sequence[Any]], list[dict[str, Any]]],
    next_link_base: str,
    fields: Mapping[str, Field] | None = None,
    extra_params: Mapping[str, str] | None = None,
    scalars: bool = True,
) -> dict[str, Any]:
    """Run a list query with $filter/$top/$skip and return Graph's list body (the rows are
    entities, or with ``scalars=False`` whole result rows).

    ``render`` turns a page of rows into JSON objects at once, so it can fetch what the rows
    refer to in one query per kind rather than one per row. The statement comes first, so the
    permission check in building it answers before any complaint about the query options."""
    query = parse_query(params)
    if query.filter:
        if not fields:
            raise BadRequest("$filter is not supported on this resource.", target="$filter")
        stmt = stmt.where(compile_filter(query.filter, fields))
    limited = stmt.offset(query.skip).limit(query.top + 1)
    rows: Sequence[Any] = (
        session.scalars(limited).all() if scalars else session.execute(limited).all()
    )
    items = render(rows[: query.top])
    if query.select:
        keep = set(query.select) | {"id"}
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    body: dict[str, Any] = {}
    if query.count:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
        body["@odata.count"] = total
    body["value"] = items
    if len(rows) > query.top:
        params = dict(extra_params or {})
        params.update({"$top": str(query.top), "$skip": str(query.skip + query.top)})
        if query.filter:
            params["$filter"] = query.filter
        if query.select:
            params["$select"] = ",".join(query.select)
        if query.count:
            params["$count"] = "true"
        body["@odata.nextLink"] = f"{next_link_base}?{urlencode(params)}"
    return body
