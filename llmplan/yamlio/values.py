"""What is wrong with a value pydantic refused, in the file's words: the shape a field
wants, a number written with its unit, a percentage for a share, a count with a suffix, an
exponent YAML reads as text; a value that may be a secret is never repeated."""

from __future__ import annotations

import datetime
import re
from typing import Any

from pydantic import BaseModel

from llmplan.errors import did_you_mean
from llmplan.units import count_with_suffix, number_in_named_unit, percent_as_fraction
from llmplan.urls import secret_part
from llmplan.yamlio.document import Loc
from llmplan.yamlio.model_paths import field_info, fields_at, union_tags


def value_message(model: type[BaseModel], model_loc: Loc, loc: Loc, err: Any) -> str:
    """What is wrong with a value pydantic refused (at `model_loc` in `model`, `loc` in the
    data), with what it got: a mapping, list or scalar where another shape belongs is said
    in the file's words (a mapping with these keys, a list of items), not in pydantic's
    ("a valid dictionary or instance of SloSpec")."""
    kind = err["type"]
    given = err.get("input")
    if kind in SHAPE_ERRORS:
        message = "expected " + shape_wanted(model, model_loc, kind)
        info = field_info(model, model_loc)
        if kind == "dict_type" and info is not None and info.description:
            message += f"; {info.description.rstrip('.')}"    # a mapping of what to what
    elif kind in {"float_parsing", "int_parsing"} and isinstance(given, str) and loc \
            and (written := number_in_named_unit(
                str(loc[-1]), given, str(loc[-2]) if len(loc) > 1 else None)) is not None:
        message = f"expected a number; {written}"     # "2 s" for ttft_ms, "180/min" for a rate
    elif kind == "float_parsing" and isinstance(given, str) and loc \
            and (share := _percent_of_a_share(model, model_loc, given)) is not None:
        # a share of 1 whose name does not say so (gpu_memory_utilization: 90%)
        message = f"expected a number; a fraction of 1 (at most 1): write {loc[-1]}: {share}"
    elif kind in {"float_parsing", "int_parsing"} and isinstance(given, str) and loc \
            and (written := count_with_suffix(str(loc[-1]), given, vllm_flag="engine" in loc,
                                              whole=kind == "int_parsing")) is not None:
        message = f"expected a number; {written}"     # "32k" for max_model_len
    elif kind == "int_parsing" and isinstance(given, str) and loc \
            and (whole := _exponent_written(given)) is not None:
        # PyYAML (YAML 1.1) reads a float only with a dot and a signed exponent (1.0e+5):
        # 1e5 and 1.0e5 stay text, which an integer field refuses
        message = (f"expected a whole number; YAML reads {given.strip()} as text, not a "
                   f"number: write {loc[-1]}: {whole}")
    else:
        message = err["msg"].removeprefix("Value error, ")
        if kind == "literal_error" and isinstance(given, str):   # FP8 for fp8
            message += did_you_mean(given, re.findall(r"'([^']*)'",
                                                      str((err.get("ctx") or {}).get("expected"))))
    if "input" in err and _may_be_secret(loc, err["input"]):
        pass                    # a key pasted in the wrong place is not repeated
    elif "input" in err and not isinstance(err["input"], dict | list):
        shown = str(err["input"]) if isinstance(err["input"], datetime.date) \
            else repr(err["input"])
        got = f"got {shown if len(shown) <= 60 else shown[:57] + '...'}"
        message += f" ({got})" if got not in message else ""
    elif kind in SCALAR_ERRORS | SHAPE_ERRORS and isinstance(err.get("input"), dict | list):
        message += f" (got a {'mapping' if isinstance(err['input'], dict) else 'list'})"
    return message


_EXPONENT = re.compile(r"^\s*\d+(?:\.\d*)?[eE][-+]?\d+\s*$")


def _exponent_written(text: str) -> int | None:
    """The whole number `text` writes in exponent notation ('1e5': 100000); None when it is
    no such number, or not whole."""
    if _EXPONENT.match(text) is None:
        return None
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 1e18 else None


#: pydantic errors of a field that wants a mapping or a list and got another shape
SHAPE_ERRORS = frozenset({"dict_type", "model_type", "model_attributes_type", "list_type",
                          "tuple_type"})


def shape_wanted(model: type[BaseModel], model_loc: Loc, kind: str) -> str:
    """The shape a field wants, in YAML's terms: its keys, or its kinds, or its items."""
    if kind in {"list_type", "tuple_type"}:
        return "a list: one '- ' line per item, or [a, b]"
    if kind == "dict_type":
        return "a mapping: one 'name: value' line per entry, or {name: value}"
    keys = fields_at(model, model_loc)
    if keys:
        shown = ", ".join(keys[:MAX_KEYS_SHOWN]) + (", ..." if len(keys) > MAX_KEYS_SHOWN else "")
        return f"a mapping of settings: {shown}"
    tags = union_tags(model, model_loc, "kind")
    if tags:
        return f"a mapping such as {{kind: {tags[0]}, ...}}; kind is one of {', '.join(tags)}"
    return "a mapping: one 'key: value' line per entry, or {key: value}"


def _percent_of_a_share(model: type[BaseModel], loc: Loc, given: str) -> str | None:
    """'0.9' for '90%' given to a field bounded at 1 (`le=1`, a share of 1 whatever its
    name); None for any other text or field."""
    info = field_info(model, loc)
    if info is None or not any(getattr(m, "le", None) == 1 for m in info.metadata):
        return None
    return percent_as_fraction(given)


#: keys a shape error lists (the schema has the rest)
MAX_KEYS_SHOWN = 8


#: how the names of fields whose values may be secrets end: never repeated in an error
#: (not "tokens": prompt_tokens and max_tokens are counts)
SECRET_ENDINGS = ("key", "key_env", "token", "secret", "password")


def _may_be_secret(loc: Loc, value: Any) -> bool:
    """A value an error must not repeat: a field named like a key, or a URL (a value with
    a scheme, or any value of a field named ..url) with a user or password in it, or a
    query (?api_key=...)."""
    name = str(loc[-1]).lower() if loc else ""
    if name.endswith(SECRET_ENDINGS):
        return True
    if not isinstance(value, str) or ("://" not in value and not name.endswith("url")):
        return False
    return secret_part(value) is not None


#: pydantic errors of a field that wants one value, where a list or mapping was given
SCALAR_ERRORS = frozenset({"int_type", "float_type", "string_type", "bool_type",
                           "literal_error", "enum"})
