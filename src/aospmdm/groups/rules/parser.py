"""The rule grammar (see docs/rules.md): tokens to an abstract syntax tree, checked against the
device property table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aospmdm.groups.rules.lexer import Kind, RuleError, Token, quote, tokenize
from aospmdm.groups.rules.properties import (
    ALLOWED_OPERATORS,
    DATETIME_OPERATORS,
    OPERATORS,
    QUANTIFIERS,
    RETIRED_PROPERTIES,
    STRING_OPERATORS,
    Property,
    PropertyType,
    lookup,
)

Value = str | bool | None | tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    """`device.<prop> -<op> <value>`, or `_ -<op> <value>` inside -any/-all (prop is None)."""

    prop: Property | None
    op: str
    value: Value
    position: int = field(default=0, compare=False)
    # Precomputed for the evaluator: casefolded string values, the compiled regex.
    folded: tuple[str, ...] = field(default=(), compare=False, repr=False)
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        left = "_" if self.prop is None else f"device.{self.prop.name}"
        return f"{left} -{self.op} {render_value(self.value)}"


@dataclass(frozen=True)
class Quantified:
    """`device.<collection> -any|-all (<expression over _>)`."""

    prop: Property
    quantifier: str  # "any" | "all"
    body: Expr
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"device.{self.prop.name} -{self.quantifier} ({self.body})"


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return " -and ".join(_operand(i, Or, And) for i in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return " -or ".join(_operand(i, Or) for i in self.items)


@dataclass(frozen=True)
class Not:
    item: Expr

    def __str__(self) -> str:
        return "-not " + _operand(self.item, Or, And)


Expr = Comparison | Quantified | And | Or | Not


def _operand(expr: Expr, *wrap: type) -> str:
    return f"({expr})" if isinstance(expr, wrap) else str(expr)


def render_value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(quote(v) for v in value) + "]"
    return quote(value)


def parse_expression(text: str) -> Expr:
    """Parse a device membership rule into its syntax tree; raises RuleError."""
    parser = _Parser(tokenize(text))
    expr = parser.expression(element=False)
    tok = parser.peek()
    if tok.kind is Kind.RPAREN:
        raise RuleError("Unbalanced parentheses: ')' has no matching '('", tok.position)
    if tok.kind is not Kind.END:
        raise RuleError(f"Expected -and or -or before {_describe(tok)}", tok.position)
    return expr


def _describe(tok: Token) -> str:
    if tok.kind is Kind.END:
        return "the end of the rule"
    if tok.kind is Kind.STRING:
        return f"the string {quote(tok.text)}"
    if tok.kind is Kind.OPERATOR:
        return f"'-{tok.text}'"
    return f"'{tok.text}'"


def _logical(tok: Token) -> str | None:
    """'and', 'or' or 'not' if the token is that operator, with or without hyphen."""
    if tok.kind in (Kind.OPERATOR, Kind.WORD) and tok.text.lower() in ("and", "or", "not"):
        return tok.text.lower()
    return None


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not Kind.END:
            self.i += 1
        return tok

    # expression := and {-or and};  and := not {-and not};  not := -not not | primary
    def expression(self, element: bool) -> Expr:
        items = [self.conjunction(element)]
        while _logical(self.peek()) == "or":
            self.next()
            items.append(self.conjunction(element))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self, element: bool) -> Expr:
        items = [self.negation(element)]
        while _logical(self.peek()) == "and":
            self.next()
            items.append(self.negation(element))
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self, element: bool) -> Expr:
        if _logical(self.peek()) == "not":
            self.next()
            return Not(self.negation(element))
        return self.primary(element)

    def primary(self, element: bool) -> Expr:
        tok = self.peek()
        if tok.kind is Kind.LPAREN:
            self.next()
            expr = self.expression(element)
            self.close(tok)
            return expr
        if tok.kind is Kind.WORD and _logical(tok) is None:
            self.next()
            return self.comparison(tok, element)
        what = "a comparison on _" if element else "a property such as device.displayName"
        raise RuleError(f"Expected {what}, found {_describe(tok)}", tok.position)

    def close(self, opening: Token) -> None:
        tok = self.peek()
        if tok.kind is Kind.RPAREN:
            self.next()
        elif tok.kind is Kind.END:
            raise RuleError("Unbalanced parentheses: '(' is never closed", opening.position)
        else:
            raise RuleError(f"Expected -and, -or or ')' before {_describe(tok)}", tok.position)

    def comparison(self, name: Token, element: bool) -> Expr:
        prop = self.property(name, element)
        op_tok = self.next()
        if op_tok.kind not in (Kind.OPERATOR, Kind.WORD):
            raise RuleError(
                f"Expected an operator such as -eq after {name.text}, found {_describe(op_tok)}",
                op_tok.position,
            )
        op = OPERATORS.get(op_tok.text.lower())
        if op is None or op in ("and", "or", "not"):
            raise RuleError(f"Unknown operator '-{op_tok.text}'", op_tok.position)
        ptype = PropertyType.STRING if prop is None else prop.type
        if op in DATETIME_OPERATORS or op not in ALLOWED_OPERATORS[ptype]:
            label = "_" if prop is None else f"device.{prop.name}"
            allowed = " ".join("-" + o for o in ALLOWED_OPERATORS[ptype] if o in _ORDER)
            raise RuleError(
                f"Operator isn't supported on attribute: -{op} on {label} "
                f"({ptype.value}; allowed: {allowed})",
                op_tok.position,
            )
        if op in QUANTIFIERS:
            assert prop is not None
            return Quantified(prop, op, self.element_body(), op_tok.position)
        if op in ("in", "notIn"):
            value: Value = self.array(op)
        else:
            value = self.scalar(op, prop)
        return _comparison(prop, op, value, op_tok.position)

    def property(self, tok: Token, element: bool) -> Property | None:
        lowered = tok.text.lower()
        if element:
            if lowered != "_":
                raise RuleError(f"Expected _ inside -any/-all, found '{tok.text}'", tok.position)
            return None
        if lowered == "_":
            raise RuleError("'_' can only be used inside -any or -all", tok.position)
        prefix, dot, name = lowered.partition(".")
        if prefix == "device" and dot:
            if name in RETIRED_PROPERTIES:
                raise RuleError(
                    f"Attribute not supported: device.{RETIRED_PROPERTIES[name]} "
                    "(Entra is retiring memberOf rules; aospmdm does not support them)",
                    tok.position,
                )
            prop = lookup(name)
            if prop is not None:
                return prop
        elif prefix == "user" and dot:
            raise RuleError(
                f"Attribute not supported: {tok.text} "
                "(a device rule can use only device properties)",
                tok.position,
            )
        raise RuleError(f"Attribute not supported: {tok.text}", tok.position)

    def element_body(self) -> Expr:
        # `-any (_ -eq "a" -or _ -eq "b")` or, as in Entra's examples, `-any _ -eq "a"`.
        tok = self.peek()
        if tok.kind is Kind.LPAREN:
            self.next()
            body = self.expression(element=True)
            self.close(tok)
            return body
        if tok.kind is Kind.WORD and tok.text == "_":
            self.next()
            return self.comparison(tok, element=True)
        raise RuleError(
            f"Expected (_ ...) or _ after -any/-all, found {_describe(tok)}", tok.position
        )

    def array(self, op: str) -> tuple[str, ...]:
        tok = self.next()
        if tok.kind is not Kind.LBRACKET:
            if tok.kind is Kind.END:
                raise RuleError(f"Missing value after -{op}", tok.position)
            raise RuleError(
                f'Expected a list such as ["a", "b"] after -{op}, found {_describe(tok)}',
                tok.position,
            )
        items: list[str] = []
        while True:
            tok = self.next()
            if tok.kind is Kind.RBRACKET and not items:
                return ()
            if tok.kind is not Kind.STRING:
                if tok.kind is Kind.END:
                    raise RuleError("Unbalanced brackets: '[' is never closed", tok.position)
                raise RuleError(
                    f"Expected a string in quotes in the list, found {_describe(tok)}",
                    tok.position,
                )
            items.append(tok.text)
            tok = self.next()
            if tok.kind is Kind.RBRACKET:
                return tuple(items)
            if tok.kind is not Kind.COMMA:
                if tok.kind is Kind.END:
                    raise RuleError("Unbalanced brackets: '[' is never closed", tok.position)
                raise RuleError(f"Expected ',' or ']', found {_describe(tok)}", tok.position)

    def scalar(self, op: str, prop: Property | None) -> Value:
        tok = self.next()
        value: Value
        if tok.kind is Kind.STRING:
            value = tok.text
        elif tok.kind is Kind.WORD and tok.text.lower() in _KEYWORDS:
            value = _KEYWORDS[tok.text.lower()]
        elif tok.kind is Kind.END or tok.kind is Kind.RPAREN or _logical(tok):
            raise RuleError(f"Missing value after -{op}", tok.position)
        else:
            raise RuleError(
                f"Expected a value (a string in quotes, true, false or null) after -{op}, "
                f"found {_describe(tok)}",
                tok.position,
            )
        if value is None:
            if op not in ("eq", "ne"):
                raise RuleError(
                    f"null can be compared only with -eq or -ne, not -{op}", tok.position
                )
            return None
        if prop is not None and prop.type is PropertyType.BOOL:
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise RuleError(
                    f"device.{prop.name} is a bool: compare it with true or false", tok.position
                )
            return value
        if isinstance(value, bool):
            label = "_" if prop is None else f"device.{prop.name}"
            raise RuleError(
                f'{label} holds strings: put the value in quotes ("{str(value).lower()}")',
                tok.position,
            )
        assert isinstance(value, str)
        if op in ("match", "notMatch"):
            try:
                re.compile(value, re.IGNORECASE)
            except re.error as e:
                raise RuleError(f"Invalid regular expression: {e}", tok.position) from None
        return value


_KEYWORDS: dict[str, Value] = {"true": True, "false": False, "null": None}
_ORDER = STRING_OPERATORS + QUANTIFIERS


def _comparison(prop: Property | None, op: str, value: Value, position: int) -> Comparison:
    folded: tuple[str, ...] = ()
    pattern = None
    if isinstance(value, str):
        folded = (value.casefold(),)
        if op in ("match", "notMatch"):
            pattern = re.compile(value, re.IGNORECASE)
    elif isinstance(value, tuple):
        folded = tuple(v.casefold() for v in value)
    return Comparison(prop, op, value, position, folded, pattern)


def used_properties(expr: Expr) -> frozenset[str]:
    """The canonical names of the device properties the expression reads."""
    match expr:
        case Comparison(prop=prop):
            return frozenset() if prop is None else frozenset({prop.name})
        case Quantified(prop=prop):
            return frozenset({prop.name})
        case And(items=items) | Or(items=items):
            return frozenset().union(*(used_properties(i) for i in items))
        case Not(item=item):
            return used_properties(item)
    raise TypeError(expr)  # pragma: no cover
