"""A provider's prompt cache, as its pricing rules describe it.

OpenAI, Anthropic, Bedrock and Gemini bill a prompt's cached prefix at a fraction of the
input price when the same prefix was sent recently: at least `min_tokens` long (1,024 for
most models) and used again within the cache's lifetime (5 minutes for most; every hit
refreshes it). A request whose shared prefix is not in the cache writes it (Anthropic bills
that write above the input price). This replays the requests a cloud path served, in
arrival order, through one such cache per scenario: the best case the provider's rules
allow, since a real provider may route two requests with the same prefix to different
machines. A read covers the whole prefix the cache holds, or, where the provider reads in
steps (OpenAI before GPT-5.6: 1,024 tokens, then steps of 128), the steps it fills.
A simulated window is a stretch of a long run, so the cache starts as the same traffic,
kept up, leaves it (`PromptCache.warm`), as the rate limits do; a conversation's own
history starts cold with the conversation.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MIN_TOKENS = 1024
DEFAULT_TTL_S = 300.0


class PromptCache:
    """One provider cache, request by request in the order the provider sees them.

    A shared prefix (a system prompt) is read whole when its group was used within the
    lifetime, else written whole. A conversation's turn (`turn`; `keep` its conversation's
    group, `prompt` its prompt) leaves its whole prompt cached for the next turn: the next
    turn reads what that cache holds, the previous prompt, and not the previous answer or
    its own new message, which it writes (they extend the cache for the turn after). A
    fanned-out turn's later call (`side`) writes its prompt too, but the turn after goes on
    from the first call's prompt, so of a later call's prompt the cache holds for the
    conversation only the history it shares (`prefix`).
    """

    def __init__(self, *, min_tokens: int | None, ttl_s: float | None,
                 step_tokens: int | None = None) -> None:
        self.minimum = DEFAULT_MIN_TOKENS if min_tokens is None else min_tokens
        self.ttl = DEFAULT_TTL_S if ttl_s is None else ttl_s
        #: reads come in steps of this many tokens past the minimum (None: any length)
        self.step = step_tokens
        self.last_use: dict[int, float] = {}
        self.held: dict[int, int] = {}           # tokens the cache holds for a group

    def read(self, t: float, group: int, prefix: int) -> int:
        """Prompt tokens a request of `group` sharing `prefix` tokens would read at t."""
        if group < 0 or prefix < self.minimum:
            return 0
        previous = self.last_use.get(group)
        if previous is None or t - previous > self.ttl:
            return 0
        held = min(prefix, self.held.get(group, prefix))
        if self.step is None or held < self.minimum:
            return held
        return self.minimum + (held - self.minimum) // self.step * self.step

    def visit(self, t: float, group: int, prefix: int, *, keep: int = -1, prompt: int = 0,
              turn: bool = False, side: bool = False) -> tuple[int, int]:
        """The provider takes the request at t: (tokens read, tokens written)."""
        hit = accounted = written = 0
        if group >= 0 and prefix >= self.minimum:
            hit = accounted = self.read(t, group, prefix)
            if hit:
                self.last_use[group] = t
            if not turn or keep != group:
                # a shared prefix: written whole when not held (then held whole)
                written += prefix - hit
                accounted = prefix
                self.held[group] = max(self.held.get(group, 0), prefix)
                self.last_use[group] = t
        if turn and keep >= 0 and prompt >= self.minimum:
            # the turn's whole prompt becomes what its conversation's cache holds; a later
            # call of a fanned-out turn adds only its history, the part it shares with the
            # first call's prompt (the turn after's prefix), whichever the provider saw first
            written += prompt - accounted
            self.held[keep] = max(self.held.get(keep, 0), min(prefix, prompt)) if side \
                else prompt
            self.last_use[keep] = t
        return hit, written

    def warm(self, arrival_s: np.ndarray, group: np.ndarray, prefix_tokens: np.ndarray,
             shared: np.ndarray, period_s: float) -> None:
        """Start as a long run of traffic repeating every `period_s` leaves the cache: the
        shared prefixes (`shared`: the requests whose group is a prefix many requests send,
        not a conversation's own history, which starts cold with its conversation) sent in
        the stretch's last lifetime, as if sent one period earlier. A stretch of a month
        does not start with an empty cache, any more than with full rate limits."""
        if period_s <= 0:
            return
        late = np.flatnonzero(shared & (arrival_s >= period_s - self.ttl))
        for i in late[np.argsort(arrival_s[late], kind="stable")]:
            self.visit(float(arrival_s[i]) - period_s, int(group[i]), int(prefix_tokens[i]))


def prompt_cache_use(arrival_s: np.ndarray, group: np.ndarray, prefix_tokens: np.ndarray,
                     served: np.ndarray, *, min_tokens: int | None, ttl_s: float | None,
                     keep_group: np.ndarray | None = None,
                     prompt_tokens: np.ndarray | None = None,
                     conversation: np.ndarray | None = None,
                     period_s: float | None = None,
                     step_tokens: int | None = None,
                     side_calls: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per request, the prompt tokens read from the cache and written to it (0 for those
    not `served`), replaying the served requests in arrival order (`PromptCache`), given
    each request's shared prefix group (-1: none) and its length. Without `conversation`,
    a request whose keep_group differs from its group counts as a conversation's turn
    (older callers). `period_s`: the requests are a stretch of traffic that repeats with
    that period, so the cache starts warm (`PromptCache.warm`); None: it starts empty.
    `side_calls`: the fanned-out turns' calls after their first (RequestStream.side_calls;
    None: none)."""
    cache = PromptCache(min_tokens=min_tokens, ttl_s=ttl_s, step_tokens=step_tokens)
    keep = np.full(len(group), -1, dtype=np.int64) if keep_group is None else keep_group
    prompts = np.zeros(len(group), dtype=np.int64) if prompt_tokens is None else prompt_tokens
    if keep_group is None or prompt_tokens is None:
        turns = np.zeros(len(group), dtype=bool)
    else:
        turns = (keep_group != group) if conversation is None else conversation
    shared = (group >= 0) & (prefix_tokens >= cache.minimum)
    if period_s is not None:
        cache.warm(arrival_s, group, prefix_tokens, served & shared & ~(turns & (keep == group)),
                   period_s)
    read = np.zeros(len(group), dtype=np.int64)
    written = np.zeros(len(group), dtype=np.int64)
    side = np.zeros(len(group), dtype=bool) if side_calls is None else side_calls
    candidates = np.flatnonzero(served & (shared | ((keep >= 0) & turns)))
    for i in candidates[np.argsort(arrival_s[candidates], kind="stable")]:
        read[i], written[i] = cache.visit(float(arrival_s[i]), int(group[i]),
                                          int(prefix_tokens[i]), keep=int(keep[i]),
                                          prompt=int(prompts[i]), turn=bool(turns[i]),
                                          side=bool(side[i]))
    return read, written


def cached_prefix_tokens(arrival_s: np.ndarray, group: np.ndarray, prefix_tokens: np.ndarray,
                         served: np.ndarray, *, min_tokens: int | None, ttl_s: float | None,
                         keep_group: np.ndarray | None = None,
                         prompt_tokens: np.ndarray | None = None,
                         conversation: np.ndarray | None = None,
                         period_s: float | None = None,
                         step_tokens: int | None = None,
                         side_calls: np.ndarray | None = None) -> tuple[int, int]:
    """(prompt tokens read from the cache, prompt tokens written to it) of the served
    requests: `prompt_cache_use`'s, summed."""
    read, written = prompt_cache_use(arrival_s, group, prefix_tokens, served,
                                     min_tokens=min_tokens, ttl_s=ttl_s, keep_group=keep_group,
                                     prompt_tokens=prompt_tokens, conversation=conversation,
                                     period_s=period_s, step_tokens=step_tokens,
                                     side_calls=side_calls)
    return int(read.sum()), int(written.sum())
