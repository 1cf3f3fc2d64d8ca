"""A provider's prompt cache, as its pricing rules describe it.

OpenAI, Anthropic, Bedrock and Gemini bill a prompt's cached prefix at a fraction of the
input price when the same prefix was sent recently: at least `min_tokens` long (1,024 for
most models) and used again within the cache's lifetime (5 minutes for most; every hit
refreshes it). A request whose shared prefix is not in the cache writes it (Anthropic bills
that write above the input price). This replays the requests a cloud path served, in
arrival order, through one such cache per scenario: the best case the provider's rules
allow, since a real provider may route two requests with the same prefix to different
machines. The whole prefix counts (providers cache in 128-token steps past the minimum).
"""

from __future__ import annotations

import numpy as np

DEFAULT_MIN_TOKENS = 1024
DEFAULT_TTL_S = 300.0


def cached_prefix_tokens(arrival_s: np.ndarray, group: np.ndarray, prefix_tokens: np.ndarray,
                         served: np.ndarray, *, min_tokens: int | None, ttl_s: float | None,
                         keep_group: np.ndarray | None = None,
                         prompt_tokens: np.ndarray | None = None) -> tuple[int, int]:
    """(prompt tokens read from the cache, prompt tokens written to it) of the served
    requests, given each request's shared prefix group (-1: none) and its length.

    A conversation's turn (`keep_group` differs from `group`: the first turn, which reads
    a system prompt) also leaves its whole prompt cached for the next turn, which reads it
    as its history; `prompt_tokens` gives that prompt's length.
    """
    minimum = DEFAULT_MIN_TOKENS if min_tokens is None else min_tokens
    ttl = DEFAULT_TTL_S if ttl_s is None else ttl_s
    last_use: dict[int, float] = {}
    cached = written = 0
    reads = served & (group >= 0) & (prefix_tokens >= minimum)
    opens = np.zeros_like(reads) if keep_group is None or prompt_tokens is None else \
        served & (keep_group >= 0) & (keep_group != group) & (prompt_tokens >= minimum)
    candidates = np.flatnonzero(reads | opens)
    for i in candidates[np.argsort(arrival_s[candidates], kind="stable")]:
        t = float(arrival_s[i])
        if reads[i]:
            g, n = int(group[i]), int(prefix_tokens[i])
            previous = last_use.get(g)
            if previous is not None and t - previous <= ttl:
                cached += n
            else:
                written += n
            last_use[g] = t
        if opens[i]:   # a conversation's first turn: its prompt becomes the history
            assert keep_group is not None
            last_use[int(keep_group[i])] = t
    return cached, written
