"""Validating parsed YAML into a model, the one entry point for user YAML (load_model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from llmplan.errors import InputError, Problem
from llmplan.yamlio.document import Loc, YamlDocument, dotted, read_yaml
from llmplan.yamlio.model_paths import field_named, through_branch
from llmplan.yamlio.problems import located_problem, one_per_field

M = TypeVar("M", bound=BaseModel)


def validate(doc: YamlDocument, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Validate parsed YAML into `model`; every pydantic error becomes a located Problem."""
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else f"a {type(doc.data).__name__}"
        raise InputError([Problem(doc.file, 1, "", f"expected a mapping of keys, got {got}")])
    try:
        validated = model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise InputError(one_per_field(
            [(located_problem(doc, model, err), through_branch(err["loc"]))
             for err in exc.errors()])) from None
    booleans = list(_booleans_read_as_numbers(doc.data, validated, ()))
    if booleans:
        raise InputError([Problem(doc.file, doc.line_of(loc), dotted(loc),
                                  f"expected a number, got {str(raw).lower()} (YAML reads "
                                  f"true/false, yes/no and on/off as booleans)")
                          for loc, raw in booleans])
    return validated


def _booleans_read_as_numbers(data: Any, value: Any, loc: Loc) -> Iterator[tuple[Loc, bool]]:
    """Where the YAML gave true/false and the model holds a number: pydantic's lax mode
    reads `replicas: yes` as 1 and `rate_per_s: true` as 1/s without a word."""
    if isinstance(data, bool):
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield loc, data
        return
    if isinstance(data, dict):
        for key, raw in data.items():
            if isinstance(value, BaseModel):
                name = field_named(type(value), str(key))
                if name is None:
                    continue
                inner = getattr(value, name, None)
            elif isinstance(value, dict):
                if key not in value:
                    continue
                inner = value[key]
            else:
                continue
            yield from _booleans_read_as_numbers(raw, inner, (*loc, key))
    elif isinstance(data, list) and isinstance(value, list | tuple) \
            and len(data) == len(value):
        for i, (raw, inner) in enumerate(zip(data, value, strict=True)):
            yield from _booleans_read_as_numbers(raw, inner, (*loc, i))


def load_model(path: str | Path, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Read a YAML file and validate it into `model` (the one entry point for user YAML)."""
    return validate(read_yaml(path), model, context)
