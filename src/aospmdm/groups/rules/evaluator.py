"""Evaluating a rule against one device's properties, and explaining the result."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aospmdm.groups.rules.parser import And, Comparison, Expr, Not, Or, Quantified
from aospmdm.groups.rules.properties import NEGATIONS, Property, PropertyType


class Facts:
    """A device's properties, looked up case-insensitively and coerced to their rule types.

    Missing keys are null. An empty collection is the same as a null one.
    """

    def __init__(self, props: Mapping[str, object]):
        self.props = props
        self._lowered: dict[str, object] | None = None

    def raw(self, prop: Property) -> object:
        if prop.name in self.props:
            return self.props[prop.name]
        if self._lowered is None:
            self._lowered = {str(k).lower(): v for k, v in self.props.items()}
        return self._lowered.get(prop.name.lower())

    def get(self, prop: Property) -> str | bool | list[str] | None:
        value = self.raw(prop)
        if prop.type is PropertyType.COLLECTION:
            if value is None:
                return []
            if isinstance(value, str):
                return [value]
            if isinstance(value, list | tuple | set | frozenset):
                return [str(v) for v in value if v is not None]
            return [str(value)]
        if value is None:
            return None
        if prop.type is PropertyType.BOOL:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            return {"true": True, "false": False}.get(text)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


def evaluate(expr: Expr, facts: Facts) -> bool:
    match expr:
        case Comparison(prop=prop) if prop is not None:
            return _compare(expr, facts.get(prop))
        case Quantified(quantifier="any", prop=prop, body=body):
            return any(_element(body, e) for e in _collection(facts.get(prop)))
        case Quantified(prop=prop, body=body):
            return all(_element(body, e) for e in _collection(facts.get(prop)))
        case And(items=items):
            return all(evaluate(i, facts) for i in items)
        case Or(items=items):
            return any(evaluate(i, facts) for i in items)
        case Not(item=item):
            return not evaluate(item, facts)
    raise TypeError(expr)  # pragma: no cover


def _collection(value: object) -> list[str]:
    return value if isinstance(value, list) else []


def _element(expr: Expr, element: str) -> bool:
    """Evaluate an -any/-all body for one element of the collection."""
    match expr:
        case Comparison():
            return _compare_string(expr, element)
        case And(items=items):
            return all(_element(i, element) for i in items)
        case Or(items=items):
            return any(_element(i, element) for i in items)
        case Not(item=item):
            return not _element(item, element)
    raise TypeError(expr)  # pragma: no cover


def _compare(c: Comparison, value: str | bool | list[str] | None) -> bool:
    if isinstance(value, list):
        # A string operator on a collection: true if an element satisfies it. A negative
        # operator is the negation of its positive twin ("no element …"), like on null.
        if c.value is None:
            return (not value) if c.op == "eq" else bool(value)
        positive = NEGATIONS.get(c.op)
        if positive is not None:
            return not any(_positive(c, positive, e) for e in value)
        return any(_positive(c, c.op, e) for e in value)
    return _compare_string(c, value)


def _compare_string(c: Comparison, value: str | bool | None) -> bool:
    if c.value is None:
        return (value is None) if c.op == "eq" else (value is not None)
    positive = NEGATIONS.get(c.op)
    if positive is not None:
        return value is None or not _positive(c, positive, value)
    return value is not None and _positive(c, c.op, value)


def _positive(c: Comparison, op: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value is c.value  # bool properties allow only -eq/-ne
    if op == "match":
        assert c.pattern is not None
        return c.pattern.search(value) is not None
    folded = value.casefold()
    if op == "eq":
        return folded == c.folded[0]
    if op == "startsWith":
        return folded.startswith(c.folded[0])
    if op == "endsWith":
        return folded.endswith(c.folded[0])
    if op == "contains":
        return c.folded[0] in folded
    if op == "in":
        return folded in c.folded
    raise ValueError(op)  # pragma: no cover


def explain(expr: Expr, facts: Facts) -> dict[str, Any]:
    """Graph's expressionEvaluationDetails: each expression, its result and its children."""
    children: list[dict[str, Any]] = []
    prop_value: dict[str, Any] | None = None
    match expr:
        case Comparison(prop=prop) | Quantified(prop=prop) if prop is not None:
            prop_value = {
                "propertyName": prop.name,
                "propertyValue": _render(facts.get(prop)),
            }
        case And(items=items) | Or(items=items):
            children = [explain(i, facts) for i in items]
        case Not(item=item):
            children = [explain(item, facts)]
    return {
        "expression": str(expr),
        "expressionResult": evaluate(expr, facts),
        "expressionEvaluationDetails": children,
        "propertyToEvaluate": prop_value,
    }


def _render(value: str | bool | list[str] | None) -> str | None:
    """Graph's propertyValue is a string: bools as true/false, collections as a JSON array."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return value
