"""Task test sets: prompts with a rule that says whether the answer was right.

A test set is JSONL, one item per line:

    {"task": "classify", "prompt": "...", "max_tokens": 8,
     "check": {"kind": "contains", "value": "positive"}}

Check kinds: exact, contains, regex (search), json_schema (the answer parses as JSON and
validates), must_refuse (the answer declines: "I don't know", "cannot", ...). The share of
right answers per task is the "useful result" rate the cost model divides by.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from llmplan.errors import InputError, Problem

REFUSAL = re.compile(
    r"\b(i\s+(do\s*n[o']?t|cannot|can't|am\s+not\s+able\s+to)\s+(know|answer|help|say|"
    r"determine|find|provide)|i\s+don't\s+have\s+(enough\s+)?(information|evidence)|"
    r"not\s+enough\s+(information|evidence)|cannot\s+be\s+determined|unknown|"
    r"no\s+evidence|i'?m\s+not\s+sure|unable\s+to)\b", re.IGNORECASE)


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Exact(_Check):
    kind: Literal["exact"] = "exact"
    value: str
    case_sensitive: bool = False

    def passes(self, text: str) -> bool:
        a, b = text.strip(), self.value.strip()
        return a == b if self.case_sensitive else a.lower() == b.lower()


class Contains(_Check):
    kind: Literal["contains"] = "contains"
    value: str
    case_sensitive: bool = False

    def passes(self, text: str) -> bool:
        return self.value in text if self.case_sensitive else \
            self.value.lower() in text.lower()


class Regex(_Check):
    kind: Literal["regex"] = "regex"
    pattern: str

    def passes(self, text: str) -> bool:
        return re.search(self.pattern, text) is not None


class JsonSchema(_Check):
    kind: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def passes(self, text: str) -> bool:
        body = text.strip()
        fenced = re.search(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
        if fenced:
            body = fenced.group(1)
        try:
            jsonschema.validate(json.loads(body), self.json_schema)
        except (ValueError, jsonschema.ValidationError):
            return False
        return True


class MustRefuse(_Check):
    kind: Literal["must_refuse"] = "must_refuse"

    def passes(self, text: str) -> bool:
        return REFUSAL.search(text) is not None


Check = Annotated[Exact | Contains | Regex | JsonSchema | MustRefuse, Field(discriminator="kind")]
_CHECK = TypeAdapter(Check)


class TestItem(BaseModel):
    """One prompt of a task test set."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    prompt: str = Field(min_length=1)
    max_tokens: int | None = Field(
        default=None, gt=0,
        description="The answer's cap; a reasoning task's request adds its planned "
                    "reasoning_tokens. None: the task's planned output.")
    check: Check


def check_from_dict(data: dict[str, Any]) -> Check:
    return _CHECK.validate_python(data)


def load_test_set(path: str | Path) -> list[TestItem]:
    """Items of a JSONL test set; a bad line is reported with its number."""
    items: list[TestItem] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError([Problem(str(path), None, "", f"cannot read test set: {exc}")]) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(TestItem.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError([Problem(str(path), number, where, first["msg"])]) from None
    if not items:
        raise InputError([Problem(str(path), None, "", "test set has no items")])
    return items
