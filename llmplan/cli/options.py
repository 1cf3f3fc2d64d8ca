"""Checks of the command line's options, run before any long work: an --out that can be
written and is not an input, a Pulumi stack name; and writes that fail said in one line."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmplan.cli.terminal import fail
from llmplan.errors import InputError, Problem


def option_problem(option: str, message: str) -> Problem:
    return Problem("<command line>", None, option, message)


#: what Pulumi takes as a stack name (and so as the file Pulumi.<stack>.yaml beside the
#: project): letters, digits, '-', '_' and '.', an optional org/project/ prefix excluded
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_stack_name(name: str) -> None:
    """Pulumi's rule (sdk/go/common/tokens: at most 100 characters of letters, digits, '-',
    '_' and '.'), and no leading '-', which `pulumi stack select` would read as a flag."""
    if not STACK_NAME.fullmatch(name) or name in (".", "..") or name.startswith("-") \
            or len(name) > 100:
        fail(InputError([option_problem("--stack", f"'{name}' is no Pulumi stack name; "
                                                     "expected at most 100 letters, digits, "
                                                     "'-', '_' and '.', not starting with "
                                                     "'-' (e.g. dev, prod-eu)")]))


def check_out_file(path: Path) -> None:
    """--out names a file to write: not a folder, in a folder that exists or can be made."""
    if path.is_dir():
        fail(InputError([option_problem("--out", f"{path} is a folder; expected a file to "
                                                   "write")]))
    check_out_folder(path.parent)


def check_out_folder(folder: Path) -> None:
    """--out names a folder that exists or can be made: checked before any long run."""
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        what = "" if existing == folder else f" (in {folder})"
        fail(InputError([option_problem("--out", f"{existing} is a file{what}; expected a "
                                                   "folder, existing or new")]))
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(InputError([option_problem("--out", f"cannot write in {existing}")]))


@contextmanager
def writing(out_dir: Path) -> Iterator[None]:
    """Writes into --out that the disk or the folder refuses (full, read-only, a folder
    where a file goes): one line naming the path and why, not a traceback."""
    try:
        yield
    except OSError as error:
        where = error.filename or out_dir
        fail(InputError([option_problem("--out", f"cannot write {where}: "
                                                   f"{error.strerror or error}")]))



def not_an_input(out_file: Path, inputs: list[Path], example: str) -> None:
    """Refuse an --out that is one of the files the command reads: an input named, or a
    file in an input folder other than a calibration (YAML) of its own."""
    target = out_file.resolve()
    for given in inputs:
        folder = given.resolve()
        if target == folder or (folder.is_dir() and target.parent == folder
                                and target.exists() and target.suffix not in (".yaml", ".yml")):
            fail(InputError([option_problem("--out", f"{out_file} is {given}'s own input "
                                                       "(it would be overwritten); expected "
                                                       f"another file, e.g. {example}")]))
