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
                         prompt_tokens: np.ndarray | None = None,
                         conversation: np.ndarray | None = None) -> tuple[int, int]:
    """(prompt tokens read from the cache, prompt tokens written to it) of the served
    requests, given each request's shared prefix group (-1: none) and its length.

    A shared prefix (a system prompt) is read whole when its group was used within the
    lifetime, else written whole. A conversation's turn (`conversation` true; `keep_group`
    its conversation, `prompt_tokens` its prompt) leaves its whole prompt cached for the
    next turn: the next turn reads what that cache holds, the previous prompt, and not the
    previous answer or its own new message, which it writes (they extend the cache for the
    turn after). Without `conversation`, a request whose keep_group differs from its group
    counts as a conversation's turn (older callers).
    """
    minimum = DEFAULT_MIN_TOKENS if min_tokens is None else min_tokens
    ttl = DEFAULT_TTL_S if ttl_s is None else ttl_s
    last_use: dict[int, float] = {}
    held: dict[int, int] = {}           # tokens the cache holds for a group
    cached = written = 0
    reads = served & (group >= 0) & (prefix_tokens >= minimum)
    if keep_group is None or prompt_tokens is None:
        turns = np.zeros_like(reads)
    else:
        turn = (keep_group != group) if conversation is None else conversation
        turns = served & (keep_group >= 0) & turn
    candidates = np.flatnonzero(reads | turns)
    for i in candidates[np.argsort(arrival_s[candidates], kind="stable")]:
        t = float(arrival_s[i])
        hit = accounted = 0
        if reads[i]:
            g, n = int(group[i]), int(prefix_tokens[i])
            previous = last_use.get(g)
            if previous is not None and t - previous <= ttl:
                hit = min(n, held.get(g, n))
                last_use[g] = t
            cached += hit
            accounted = hit
            if not turns[i] or int(keep_group[i]) != g:     # type: ignore[index]
                # a shared prefix: written whole when not held (then held whole)
                written += n - hit
                accounted = n
                held[g] = max(held.get(g, 0), n)
                last_use[g] = t
        if turns[i]:   # the turn's whole prompt becomes what its conversation's cache holds
            assert keep_group is not None and prompt_tokens is not None
            k, prompt = int(keep_group[i]), int(prompt_tokens[i])
            if prompt >= minimum:
                written += prompt - accounted
                held[k] = prompt
                last_use[k] = t
    return cached, written
