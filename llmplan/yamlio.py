"""YAML in, typed models out: load with line numbers, validate once, explain every error.

`load_model(path, Model)` is the only way user YAML enters the program. It keeps the line of
every node so that a pydantic error at `deployments.a.replicas` can say which line it is on,
rejects duplicate keys (PyYAML silently keeps the last), and turns every failure into an
`InputError` listing file, line, field path and what was expected.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from llmplan.errors import InputError, Problem, did_you_mean
from llmplan.units import count_with_suffix, number_in_named_unit, percent_as_fraction
from llmplan.urls import secret_part

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class YamlDocument:
    """Parsed YAML data plus the 1-based line of every mapping value and sequence item."""

    def __init__(self, data: Any, lines: dict[Loc, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest existing node along `loc` (pydantic locs may go deeper)."""
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in self.lines:
                return self.lines[loc[:cut]]
        return None


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse YAML text; raise InputError with the line on syntax errors and duplicate keys."""
    try:
        return _parse(text, file)
    except RecursionError:
        raise InputError([Problem(file, None, "", "not valid YAML: nested too deeply; "
                                  "expected at most a few hundred levels")]) from None


def _parse(text: str, file: str) -> YamlDocument:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise InputError([_yaml_problem(exc, file)]) from None
    if root is None:
        return YamlDocument(None, {(): 1}, file)
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    _index(root, (), lines, problems, file, open_nodes=set(), done=set())
    if problems:
        raise InputError(problems)
    try:
        data = yaml.SafeLoader(text).get_single_data()
    except yaml.YAMLError as exc:
        raise InputError([_yaml_problem(exc, file)]) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError([Problem(file, None, "", f"not valid YAML: {exc}")]) from None
    return YamlDocument(data, lines, file)


def _yaml_problem(exc: yaml.YAMLError, file: str) -> Problem:
    """A syntax error where it is (line and column), what the parser was reading then, and
    the usual cause in plain words (PyYAML says "expected <block end>, but found
    '<block mapping start>'" for a key one space out of line)."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    message = "not valid YAML" + (f" at column {mark.column + 1}" if mark is not None else "")
    message += f": {problem}"
    context, started = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and started is not None:
        message += f" ({context} begun on line {started.line + 1}, column {started.column + 1})"
    cause = next((why for said, why in YAML_CAUSES if said in problem), None)
    return Problem(file, line, "", message + (f"; {cause}" if cause else ""))


#: what PyYAML says -> the usual mistake behind it, in the words of someone fixing the file
YAML_CAUSES = (
    ("expected <block end>", "check the indentation: the keys of one mapping, and the '- ' of "
     "one list's items, start in the same column"),
    ("mapping values are not allowed", "a ':' where no key can start: a key indented deeper "
     "than the one above it, or a value holding ': ' (put that value in quotes)"),
    ("'\\t'", "YAML indents with spaces, not tabs"),
    ("expected ',' or '}'", "a '{' left open, or a missing comma between its entries"),
    ("expected ',' or ']'", "a '[' left open, or a missing comma between its items"),
    ("end of stream", "a quote, '{' or '[' left open"),
)


BOOL_TAG = "tag:yaml.org,2002:bool"


def _index(node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[Problem],
           file: str, *, open_nodes: set[int], done: set[int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if id(node) in open_nodes:  # an alias to one of its own ancestors: infinite data
        problems.append(Problem(file, lines[loc], _dotted(loc),
                                "recursive alias (the node contains itself); expected plain data"))
        return
    if id(node) in done:  # an alias to a node already indexed: do not walk it again
        return
    open_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.tag == BOOL_TAG:
                # YAML 1.1 reads a bare on / off / yes / no as true or false, and a name
                # would silently become a boolean
                problems.append(Problem(file, line, _dotted((*loc, key)),
                                        f"the key {key} reads as a YAML boolean, not a name; "
                                        f"expected it quoted ('{key}') or another name"))
                continue
            if key in seen:
                problems.append(Problem(file, line, _dotted((*loc, key)),
                                        f"duplicate key (first given on line {seen[key]})"))
                continue
            seen[key] = line
            _index(value_node, (*loc, key), lines, problems, file, open_nodes=open_nodes,
                   done=done)
            lines[(*loc, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*loc, i), lines, problems, file, open_nodes=open_nodes, done=done)
    open_nodes.discard(id(node))
    done.add(id(node))


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_yaml(path: str | Path) -> YamlDocument:
    """Read and parse a YAML file; a missing or unreadable file is an InputError too."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError([Problem(file, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(file, None, "", f"cannot read file: {exc}")]) from None
    return parse_yaml(text, file)


def validate(doc: YamlDocument, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Validate parsed YAML into `model`; every pydantic error becomes a located Problem."""
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else f"a {type(doc.data).__name__}"
        raise InputError([Problem(doc.file, 1, "", f"expected a mapping of keys, got {got}")])
    try:
        validated = model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise InputError(_one_per_field(
            [(_problem(doc, model, err), _through_branch(err["loc"]))
             for err in exc.errors()])) from None
    booleans = list(_booleans_read_as_numbers(doc.data, validated, ()))
    if booleans:
        raise InputError([Problem(doc.file, doc.line_of(loc), _dotted(loc),
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
                name = _field_named(type(value), str(key))
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


def _field_named(model: type[BaseModel], key: str) -> str | None:
    """The field a data key fills (its name or its alias)."""
    if key in model.model_fields:
        return key
    return next((name for name, info in model.model_fields.items() if info.alias == key), None)


def _through_branch(loc: Any) -> bool:
    """Whether pydantic reached this error through a member of a union (a loc part such as
    "list[Route]" or "literal['seed']", which is no key of the data)."""
    return any(_is_branch(part) for part in loc)


def _is_branch(part: str | int) -> bool:
    return isinstance(part, str) and "[" in part and part.endswith("]")


def _one_per_field(found: list[tuple[Problem, bool]]) -> list[Problem]:
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


def _problem(doc: YamlDocument, model: type[BaseModel], err: Any) -> Problem:
    full = tuple(err["loc"])
    kind = err["type"]
    if kind in SHAPE_ERRORS and len(full) > 1 and isinstance(full[-1], str) \
            and full[-1] in _union_tags(model, full[:-1], "kind"):
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
        expected = _union_tags(model, full, tag_key)
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
        expected = _union_tags(model, full, "kind")
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
    return Problem(doc.file, doc.line_of(loc), _dotted(loc), message)


def value_message(model: type[BaseModel], model_loc: Loc, loc: Loc, err: Any) -> str:
    """What is wrong with a value pydantic refused (at `model_loc` in `model`, `loc` in the
    data), with what it got: a mapping, list or scalar where another shape belongs is said
    in the file's words (a mapping with these keys, a list of items), not in pydantic's
    ("a valid dictionary or instance of SloSpec")."""
    kind = err["type"]
    given = err.get("input")
    if kind in SHAPE_ERRORS:
        message = "expected " + _shape_wanted(model, model_loc, kind)
        info = _field_info(model, model_loc)
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


#: the error type of a union whose member a function of `kind` picks (pydantic's
#: Discriminator(custom_error_type=UNKNOWN_KIND)): `_problem` names the kind given
UNKNOWN_KIND = "unknown_kind"


#: pydantic errors of a field that wants a mapping or a list and got another shape
SHAPE_ERRORS = frozenset({"dict_type", "model_type", "model_attributes_type", "list_type",
                          "tuple_type"})


def _shape_wanted(model: type[BaseModel], model_loc: Loc, kind: str) -> str:
    """The shape a field wants, in YAML's terms: its keys, or its kinds, or its items."""
    if kind in {"list_type", "tuple_type"}:
        return "a list: one '- ' line per item, or [a, b]"
    if kind == "dict_type":
        return "a mapping: one 'name: value' line per entry, or {name: value}"
    keys = fields_at(model, model_loc)
    if keys:
        shown = ", ".join(keys[:MAX_KEYS_SHOWN]) + (", ..." if len(keys) > MAX_KEYS_SHOWN else "")
        return f"a mapping of settings: {shown}"
    tags = _union_tags(model, model_loc, "kind")
    if tags:
        return f"a mapping such as {{kind: {tags[0]}, ...}}; kind is one of {', '.join(tags)}"
    return "a mapping: one 'key: value' line per entry, or {key: value}"


def _percent_of_a_share(model: type[BaseModel], loc: Loc, given: str) -> str | None:
    """'0.9' for '90%' given to a field bounded at 1 (`le=1`, a share of 1 whatever its
    name); None for any other text or field."""
    info = _field_info(model, loc)
    if info is None or not any(getattr(m, "le", None) == 1 for m in info.metadata):
        return None
    return percent_as_fraction(given)


def _field_info(model: type[BaseModel], loc: Loc) -> FieldInfo | None:
    """The field a pydantic `loc` ends at (None: not a model's field)."""
    if not loc:
        return None
    parent: Any = model
    for part in loc[:-1]:
        parent = _step(parent, part)
        if parent is None:
            return None
    parent = _unwrap(parent)
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return None
    name = _field_named(parent, str(loc[-1]))
    return None if name is None else parent.model_fields[name]


def _wanted_at(model: type[BaseModel], loc: Loc) -> str | None:
    """What the field at `loc` holds, in the file's words: a number and its bounds, one of
    its values, a mapping's settings or kinds; its description after (None: not found)."""
    info = _field_info(model, loc)
    if info is None:
        return None
    tp = _unwrap(info.annotation)
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
        wanted = _shape_wanted(model, loc, "list_type")
    else:
        wanted = _shape_wanted(model, loc, "model_type")
    return wanted + (f"; {about}" if about else "")


#: a scalar field's type in the file's words
SCALAR_WORDS: dict[Any, str] = {int: "a whole number", float: "a number", str: "text",
                                bool: "true or false"}
#: annotated-types bounds (Gt, Ge, Lt, Le) in words
BOUND_WORDS = (("gt", "above"), ("ge", "at least"), ("lt", "below"), ("le", "at most"))


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
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _union_tags(model: type[BaseModel], loc: Loc, key: str) -> list[str]:
    """The `key` values (tags) of the discriminated union found by following `loc`."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    tags: list[str] = []
    for member in typing.get_args(_unwrap(current)):
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel) \
                and key in member.model_fields:
            tags += [str(t) for t in typing.get_args(member.model_fields[key].annotation)]
    return tags


def _unwrap(tp: Any) -> Any:
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
    tp = _unwrap(tp)
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
            member = _unwrap(member)
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
        names = ", ".join(getattr(_unwrap(a), "__name__", str(a)) for a in args)
        return f"{origin.__name__}[{names}]"
    return None


def load_model(path: str | Path, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Read a YAML file and validate it into `model` (the one entry point for user YAML)."""
    return validate(read_yaml(path), model, context)
