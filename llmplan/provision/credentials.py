"""Text shaped like a real credential: what no generated file may carry in plain text."""

from __future__ import annotations

import re

#: Shapes of real credentials (provider key prefixes, AWS access keys, private keys).
CREDENTIAL = re.compile(
    r"(sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9\-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----)")


def credential_lines(text: str) -> list[int]:
    """The 1-based lines of `text` holding something shaped like a credential."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if CREDENTIAL.search(line)]
