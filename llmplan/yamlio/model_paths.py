"""Following a pydantic error's loc through a model's types: the field it ends at, the
fields and union kinds found there, and the parts of it that are keys in the data."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from llmplan.yamlio.document import Loc


def field_named(model: type[BaseModel], key: str) -> str | None:
    """The field a data key fills (its name or its alias)."""
    if key in model.model_fields:
        return key
    return next((name for name, info in model.model_fields.items() if info.alias == key), None)


def through_branch(loc: Any) -> bool:
    """Whether pydantic reached this error through a member of a union (a loc part such as
    "list[Route]" or "literal['seed']", which is no key of the data)."""
    return any(_is_branch(part) for part in loc)


def _is_branch(part: str | int) -> bool:
    return isinstance(part, str) and "[" in part and part.endswith("]")


def field_info(model: type[BaseModel], loc: Loc) -> FieldInfo | None:
    """The field a pydantic `loc` ends at (None: not a model's field)."""
    if not loc:
        return None
    parent: Any = model
    for part in loc[:-1]:
        parent = _step(parent, part)
        if parent is None:
            return None
    parent = unwrap(parent)
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return None
    name = field_named(parent, str(loc[-1]))
    return None if name is None else parent.model_fields[name]


def data_loc(data: Any, loc: Loc) -> Loc:
    """Drop the parts of a pydantic loc that are not keys in the data (union tags and the like)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            out.append(part)
            node = node[part]
        elif not isinstance(node, dict | list) and not _is_branch(part):
            out.append(part)  # field under a scalar: keep so the path still reads right
            break
    else:
        return tuple(out)
    return tuple(out)


def fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model found by following a pydantic `loc` from `model`."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    current = unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def union_tags(model: type[BaseModel], loc: Loc, key: str) -> list[str]:
    """The `key` values (tags) of the discriminated union found by following `loc`."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    tags: list[str] = []
    for member in typing.get_args(unwrap(current)):
        member = unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel) \
                and key in member.model_fields:
            tags += [str(t) for t in typing.get_args(member.model_fields[key].annotation)]
    return tags


def unwrap(tp: Any) -> Any:
    """The type inside Annotated[...] and Optional (X | None: X)."""
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _step(tp: Any, part: str | int) -> Any:
    tp = unwrap(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return field.annotation if field else None
    if origin in (dict, typing.Mapping):
        return typing.get_args(tp)[1]
    if origin in (list, tuple):
        return typing.get_args(tp)[0]
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(tp):
            member = unwrap(member)
            if _is_branch(part) and _branch_label(member) == part:
                return member
            if isinstance(member, type) and issubclass(member, BaseModel):
                kind = member.model_fields.get("kind")
                if kind is not None and part in typing.get_args(kind.annotation):
                    return member
                if member.__name__ == part:
                    return member
        return None
    return None


def _branch_label(tp: Any) -> str | None:
    """pydantic's loc label of a generic union member, e.g. "list[Route]"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, dict, tuple) and args:
        names = ", ".join(getattr(unwrap(a), "__name__", str(a)) for a in args)
        return f"{origin.__name__}[{names}]"
    return None
