"""pydantic's validation errors as located problems: an unknown key with the keys allowed, a
missing field with what it holds, an unknown kind with the kinds, one line a field."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel

from llmplan.errors import Problem, did_you_mean
from llmplan.yamlio.document import Loc, YamlDocument, dotted
from llmplan.yamlio.model_paths import data_loc, field_info, fields_at, union_tags, unwrap
from llmplan.yamlio.values import SHAPE_ERRORS, shape_wanted, value_message


def one_per_field(found: list[tuple[Problem, bool]]) -> list[Problem]:
    """The problems as a reader wants them: a field a union's members each refused gets one
    line ("Input should be a valid list or 'seed'"), and a member's complaint about the
    field as a whole is dropped where another member found what is wrong inside it (a
    mistyped key in one of the listed routes, not "should be 'seed'")."""
    paths = [problem.path for problem, _ in found]
    kept: list[Problem] = []
    merged: dict[str, int] = {}
    for problem, branch in found:
        if branch and any(other.startswith((f"{problem.path}.", f"{problem.path}["))
                          for other in paths):
            continue
        if branch and problem.path in merged:
            first = kept[merged[problem.path]]
            wanted = problem.message.removeprefix("Input should be ")
            got = ""
            if " (got " in wanted:
                wanted, got = wanted.split(" (got ", 1)
                got = f" (got {got}"
            head, _, tail = first.message.partition(" (got ")
            joint = "; or" if ": " in head else " or"     # after a shape's own "a, or b"
            kept[merged[problem.path]] = dataclasses.replace(
                first, message=f"{head}{joint} {wanted}" + (f" (got {tail}" if tail else got))
            continue
        if branch:
            merged[problem.path] = len(kept)
        kept.append(problem)
    return kept


def located_problem(doc: YamlDocument, model: type[BaseModel], err: Any) -> Problem:
    full = tuple(err["loc"])
    kind = err["type"]
    if kind in SHAPE_ERRORS and len(full) > 1 and isinstance(full[-1], str) \
            and full[-1] in union_tags(model, full[:-1], "kind"):
        # a scalar where a union's mapping belongs (`gpu-fleet: H100-SXM`): pydantic tries
        # the member its `kind` function picks and puts that tag in the loc, no key of the
        # data; said at the field, with the union's kinds
        full = full[:-1]
    loc = data_loc(doc.data, full)
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = fields_at(model, full[:-1])
        key = str(loc[-1]) if loc else "?"
        message = f"unknown key '{key}'{did_you_mean(key, allowed)}"
        if allowed:
            message += f"; expected one of: {', '.join(sorted(allowed))}"
    elif kind == "missing":
        # the missing key is not in the data, so data_loc dropped it: put it back
        loc = (*data_loc(doc.data, full[:-1]), full[-1]) if full else loc
        message = "required field is missing"
        if (wanted := _wanted_at(model, full)) is not None:
            message += f"; expected {wanted}"
    elif kind in {"union_tag_invalid", "union_tag_not_found"}:
        tag_key = str(ctx.get("discriminator", "'kind'")).strip("'")
        loc = (*loc, tag_key)
        expected = union_tags(model, full, tag_key)
        if kind == "union_tag_not_found":
            message = "required field is missing"
        else:
            tag = str(ctx.get("tag", ""))
            message = f"unknown {tag_key} '{tag}'{did_you_mean(tag, expected)}"
        if expected:
            message += f"; expected one of: {', '.join(expected)}"
    elif kind == UNKNOWN_KIND and isinstance(err.get("input"), dict):
        # a union told apart by a function of its `kind` (a default member when left out):
        # said as a tagged union's unknown kind is, at the kind
        given = err["input"].get("kind")
        loc = (*loc, "kind")
        expected = union_tags(model, full, "kind")
        message = f"unknown kind '{given}'{did_you_mean(str(given), expected)}; expected " \
                  f"one of: {', '.join(expected)}"
    elif kind == "too_short":
        # pydantic's "Dictionary should have at least 1 item after validation, not 0"
        least = ctx.get("min_length", 1)
        what = "entry" if isinstance(err.get("input"), dict) else "item"
        message = (f"expected at least {least} {what}{'' if least == 1 else 's'}, got "
                   f"{'none' if not err.get('input') else len(err['input'])}")
    else:
        message = value_message(model, full, loc, err)
    return Problem(doc.file, doc.line_of(loc), dotted(loc), message)


#: the error type of a union whose member a function of `kind` picks (pydantic's
#: Discriminator(custom_error_type=UNKNOWN_KIND)): `located_problem` names the kind given
UNKNOWN_KIND = "unknown_kind"


def _wanted_at(model: type[BaseModel], loc: Loc) -> str | None:
    """What the field at `loc` holds, in the file's words: a number and its bounds, one of
    its values, a mapping's settings or kinds; its description after (None: not found)."""
    info = field_info(model, loc)
    if info is None:
        return None
    tp = unwrap(info.annotation)
    about = (info.description or "").rstrip(".")
    if tp is str and about:         # a name of something: the description says of what
        first = about.split()[0]    # "A GPU catalog id": "a GPU ..."; "GPU ids": kept
        return about[0].lower() + about[1:] if len(first) == 1 or first[1:].islower() else about
    if tp in SCALAR_WORDS:
        bounds = [f"{words} {getattr(bound, attr):g}" for bound in info.metadata
                  for attr, words in BOUND_WORDS if hasattr(bound, attr)]
        wanted = " ".join([SCALAR_WORDS[tp], " and ".join(bounds)]).strip()
    elif typing.get_origin(tp) is typing.Literal:
        wanted = "one of " + ", ".join(str(v) for v in typing.get_args(tp))
    elif typing.get_origin(tp) in (list, tuple):
        wanted = shape_wanted(model, loc, "list_type")
    else:
        wanted = shape_wanted(model, loc, "model_type")
    return wanted + (f"; {about}" if about else "")


#: a scalar field's type in the file's words
SCALAR_WORDS: dict[Any, str] = {int: "a whole number", float: "a number", str: "text",
                                bool: "true or false"}
#: annotated-types bounds (Gt, Ge, Lt, Le) in words
BOUND_WORDS = (("gt", "above"), ("ge", "at least"), ("lt", "below"), ("le", "at most"))
