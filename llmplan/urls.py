"""URLs a user gives (an endpoint, a kubeconfig's server) and the secrets they may carry:
a `user:password@` part, or a query or fragment (`?api_key=...`,
`?X-Amz-Security-Token=...`). A message names such a URL only as `shown_url` gives it."""

from __future__ import annotations

#: what replaces a hidden part of a URL
HIDDEN = "***"


def _parts(url: str) -> tuple[str, str, str]:
    """scheme with its '://' (or ''), the authority (user:password@host:port) and the rest
    (path, query, fragment), split as a browser would, not as a URL parser that gives up."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return scheme + sep, rest[:end], rest[end:]


def secret_part(url: str) -> str | None:
    """The part of `url` that may carry a secret, named without its value
    ("user:password@", "query or fragment"), or None."""
    _, authority, tail = _parts(url)
    if "@" in authority:
        return "user:password@"
    if "?" in tail or "#" in tail:
        return "query or fragment"
    return None


def shown_url(url: str) -> str:
    """`url` fit for a message or an output: a user:password@ part and a query or fragment
    replaced by HIDDEN (scheme, host, port and path kept)."""
    scheme, authority, tail = _parts(url)
    if "@" in authority:
        authority = f"{HIDDEN}@{authority.rsplit('@', 1)[1]}"
    cut = min((i for i in (tail.find(c) for c in "?#") if i >= 0), default=-1)
    if cut >= 0:
        tail = f"{tail[:cut + 1]}{HIDDEN}"
    return scheme + authority + tail
