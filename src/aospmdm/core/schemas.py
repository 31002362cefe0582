"""The base of every admin-API input schema: Graph's names, strict types, no unknown fields.

Read-only properties the API itself returns and ``@odata.*`` annotations are accepted and
ignored, so an object read from Graph can be posted back; ``@odata.type``, where a schema
names its type, must name that type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from aospmdm.core.errors import BadRequest

# Times arrive as ISO 8601 text in JSON; strict mode would only take datetime objects.
Timestamp = Annotated[datetime, Field(strict=False)]

M = TypeVar("M", bound=BaseModel)
READ_ONLY = frozenset({"id", "createdDateTime", "lastModifiedDateTime", "isBuiltIn"})


class GraphInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, strict=True
    )

    odata_type: ClassVar[str | None] = None
    read_only: ClassVar[frozenset[str]] = READ_ONLY

    @model_validator(mode="before")
    @classmethod
    def _drop_annotations(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        _refuse_nul(data)
        kept: dict[str, Any] = {}
        declared = {f.alias for f in cls.model_fields.values() if f.alias}
        for key, value in data.items():
            if key in declared:
                kept[key] = value
            elif key == "@odata.type":
                cls._check_type(value)
            elif "@odata." in key and not key.endswith("@odata.bind"):
                continue
            elif key not in cls.read_only:
                kept[key] = value
        return kept

    @classmethod
    def _check_type(cls, value: Any) -> None:
        if cls.odata_type is None:
            return
        expected = cls.odata_type.lstrip("#")
        if not isinstance(value, str) or value.lstrip("#") != expected:
            raise BadRequest(
                f"@odata.type must be '#{expected}' here; got {value!r}.", target="@odata.type"
            )

    def given(self) -> dict[str, Any]:
        """The fields the client actually sent (for PATCH)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _refuse_nul(value: Any, path: str = "") -> None:
    """Text may not hold NUL characters: PostgreSQL cannot store them (and no admin means one)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest("Text may not contain NUL (\\u0000) characters.", target=path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _refuse_nul(item, f"{path}.{n}")


def validated(model: type[M], data: Any) -> M:
    """Validate a body the route had to read before it knew its schema (a Graph collection
    holding several @odata.types); errors answer 400 like any other body."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]
        ) from None
