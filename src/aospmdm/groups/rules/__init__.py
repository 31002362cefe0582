"""The Microsoft Entra dynamic membership rule language, for device rules (docs/rules.md).

`parse(text)` checks a rule and returns a `Rule`, which can match one device's properties,
explain that result expression by expression, and compile to SQL that narrows a whole fleet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.sql import ColumnElement

from aospmdm.groups.rules import evaluator, sql
from aospmdm.groups.rules.lexer import MAX_RULE_LENGTH, RuleError
from aospmdm.groups.rules.parser import Expr, parse_expression, used_properties
from aospmdm.groups.rules.properties import DEVICE_PROPERTIES, Property, PropertyType
from aospmdm.groups.rules.sql import (
    CollectionColumn,
    Column,
    ExistsCollection,
    ExpressionCollection,
)

__all__ = [
    "DEVICE_PROPERTIES",
    "MAX_RULE_LENGTH",
    "CollectionColumn",
    "ExistsCollection",
    "ExpressionCollection",
    "Property",
    "PropertyType",
    "Rule",
    "RuleError",
    "parse",
]


class Rule:
    """A parsed device membership rule. `str(rule)` is its canonical text, which parses back
    to an equal rule."""

    def __init__(self, text: str, expr: Expr):
        self.text = text
        self.expr = expr
        self.properties: frozenset[str] = used_properties(expr)
        """Canonical names of the device properties the rule reads."""

    def matches(self, props: Mapping[str, object]) -> bool:
        """Whether a device with these properties (camelCase keys, any case) is a member."""
        return evaluator.evaluate(self.expr, evaluator.Facts(props))

    def explain(self, props: Mapping[str, object]) -> dict[str, Any]:
        """Graph's expressionEvaluationDetails tree for these properties."""
        return evaluator.explain(self.expr, evaluator.Facts(props))

    def to_sql(self, columns: Mapping[str, Column | CollectionColumn]) -> ColumnElement[bool]:
        """A condition selecting every matching row, perhaps more: check them with matches."""
        return sql.to_sql(self.expr, columns)

    def sql_bounds(
        self, columns: Mapping[str, Column | CollectionColumn]
    ) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        """(upper, lower): matches satisfy upper; rows satisfying lower surely match."""
        return sql.sql_bounds(self.expr, columns)

    def __str__(self) -> str:
        return str(self.expr)

    def __repr__(self) -> str:
        return f"Rule({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self.expr == other.expr

    def __hash__(self) -> int:
        return hash(self.expr)


def parse(text: str) -> Rule:
    """Parse and check a device membership rule; raises RuleError with a position."""
    return Rule(text, parse_expression(text))
