"""YAML read with the line of every node: syntax errors, duplicate keys and keys that YAML
reads as booleans said with their line, and a node's place written as a field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmplan.errors import InputError, Problem

Loc = tuple[str | int, ...]


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
        problems.append(Problem(file, lines[loc], dotted(loc),
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
                problems.append(Problem(file, line, dotted((*loc, key)),
                                        f"the key {key} reads as a YAML boolean, not a name; "
                                        f"expected it quoted ('{key}') or another name"))
                continue
            if key in seen:
                problems.append(Problem(file, line, dotted((*loc, key)),
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


def dotted(loc: Loc) -> str:
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
