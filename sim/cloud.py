"""A cloud API as the client sees it: rate limits, 429s and retries, outages, streaming time.

Each call is one SimPy timeout with a callback (no process per request). A call is refused
with a 429 when the provider's limiter says so (sim/ratelimit.py) or, with the configured
probability, when the provider's shared pool is busy; it fails at once (errors) or hangs to
the client's timeout (timeouts) during an outage. The client retries with exponential
backoff and jitter, waiting at least the retry-after when it honours it (and giving up at
once on one longer than `max_retry_after_s`, as openai-python does past two minutes: a
daily limit's), and gives up after `max_retries`; a hybrid router can then take the
request back (`on_give_up`). An admitted call streams: TTFT = network round trip +
provider TTFT (lognormal) + the prompt tokens the provider's cache does not hold at its
prefill pace, then (n - 1) tokens at the request's output rate (lognormal).

Planning asks two more things of the same limits: what rate they sustain for a stream's
token mix (`sustained_limit`), and, for a stretch of a long busy day, to start the limiter
as that same traffic, kept up, leaves it (`CloudEndpoint.prime`) instead of with a full
minute's allowance, which would let a short stretch burst far past the limit.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import simpy

from llmplan.catalog import CloudModelSpec
from llmplan.scenario.cloud import CloudDeployment
from llmplan.sim.prompt_cache import PromptCache, cached_prefix_tokens
from llmplan.sim.ratelimit import (
    DEFAULT_ACCOUNTING,
    LIMITERS,
    AzureSlices,
    BedrockReserve,
    InputOnly,
    InputOutput,
    Limiter,
    Sustained,
)
from llmplan.sim.records import FAILED, OK, SERVED_CLOUD, THROTTLED, TIMED_OUT, TOO_LONG
from llmplan.sim.serving import Workload
from llmplan.traffic import RequestStream

Z95 = 1.6448536269514722
GiveUp = Callable[[int, float, int], None]   # (request id, time, outcome code)


def outage_windows(spec: CloudDeployment, horizon_s: float,
                   rng: np.random.Generator) -> list[tuple[float, float]]:
    """Explicit windows plus random ones (up ~ Exp(MTBF), down ~ Exp(MTTR)), those that
    overlap or touch merged into one: the provider is down once, however many windows
    say so."""
    windows = [(w.start_s, w.start_s + w.duration_s) for w in spec.outages.windows]
    if spec.outages.mtbf_hours is not None and spec.outages.mttr_minutes is not None:
        t = 0.0
        while True:
            t += rng.exponential(spec.outages.mtbf_hours * 3600.0)
            if t >= horizon_s:
                break
            down = rng.exponential(spec.outages.mttr_minutes * 60.0)
            windows.append((t, t + down))
            t += down
    merged: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def daily_limits(spec: CloudDeployment, model: CloudModelSpec) -> tuple[float | None,
                                                                         float | None]:
    """(requests/day, tokens/day) of `spec`'s account: the scenario's, else the default
    tier's where the scenario keeps the tier's per-minute limits (one giving its own
    per-minute quota describes another account); None: no such limit."""
    limits = spec.limits
    tier = model.rate_limit_tiers.get(model.default_tier or "")
    default = tier if tier is not None and not limits.requests_per_min \
        and not limits.tokens_per_min else None
    return (limits.requests_per_day or (default.requests_per_day if default else None),
            limits.tokens_per_day or (default.tokens_per_day if default else None))


def make_limiter(spec: CloudDeployment, model: CloudModelSpec,
                 cached_share: float | None = None) -> Limiter:
    """The limiter of `spec`'s limits; `cached_share`: the share of the prompts the
    provider's cache answers, as simulated (None: the scenario's cached_input_fraction)."""
    limits = spec.limits
    accounting = accounting_of(spec, model)
    rpm = limits.requests_per_min or (None if accounting == "azure_slices"
                                      and limits.tokens_per_min else model.default_rpm)
    tpm = limits.tokens_per_min or model.default_tpm
    tier = model.rate_limit_tiers.get(model.default_tier or "")
    rpd, tpd = daily_limits(spec, model)
    if accounting == "azure_slices":
        return AzureSlices(rpm, tpm, rpd, tpd, slice_s=float(limits.slice_s))
    share = 1.0 - (spec.costs.cached_input_fraction if cached_share is None else cached_share)
    if accounting == "bedrock_reserve":
        return BedrockReserve(rpm, tpm, rpd, tpd, output_burndown=model.output_quota_burndown,
                              uncached_share=share)
    if accounting == "input_output":
        otpm = limits.output_tokens_per_min or (tier.output_tokens_per_min if tier else None)
        return InputOutput(rpm, tpm, rpd, tpd, output_tokens_per_min=otpm, uncached_share=share)
    return LIMITERS[accounting](rpm, tpm, rpd, tpd)


def simulated_cache_share(model: CloudModelSpec, taken: np.ndarray, *, arrival_s: np.ndarray,
                          group: np.ndarray | None, prefix: np.ndarray | None,
                          keep: np.ndarray | None, prompts: np.ndarray,
                          turns: np.ndarray | None,
                          period_s: float | None = None,
                          side_calls: np.ndarray | None = None) -> float | None:
    """Of the prompt tokens of the requests `taken`, the share the provider's cache answers
    when all of them reach it in arrival order, the cache warm as traffic repeating every
    `period_s` leaves it (None: no shared prefixes, or a provider that does not cache: the
    scenario's cached_input_fraction stands)."""
    if group is None or prefix is None or model.cached_input_usd_per_mtok is None:
        return None
    total = int(np.asarray(prompts)[taken].sum())
    if total <= 0:
        return None
    read, _ = cached_prefix_tokens(arrival_s, group, prefix, taken, keep_group=keep,
                                   prompt_tokens=prompts, conversation=turns,
                                   min_tokens=model.min_cacheable_tokens,
                                   ttl_s=model.cache_ttl_s, period_s=period_s,
                                   step_tokens=model.cache_hit_step_tokens,
                                   side_calls=side_calls)
    return read / total


#: accountings whose token limits leave out prompt tokens read from the provider's cache
CACHE_READS_UNCOUNTED = ("input_output", "bedrock_reserve")


def accounting_of(spec: CloudDeployment, model: CloudModelSpec) -> str:
    """How `spec`'s provider counts against its limits (the scenario's, else its own)."""
    return spec.limits.accounting or DEFAULT_ACCOUNTING[model.provider]


def reserved_output(spec: CloudDeployment, model: CloudModelSpec, output: int) -> int:
    """The output tokens a call reserves against the token limit: the client's max_tokens;
    unset, Bedrock reserves the model's maximum output (REFERENCE.md; AWS's token burndown
    page), the others are taken to be sent the answer's own length."""
    if spec.limits.max_tokens:
        return spec.limits.max_tokens
    if accounting_of(spec, model) == "bedrock_reserve" and model.max_output_tokens:
        return max(model.max_output_tokens, output)
    return output


def limit_cache_share(spec: CloudDeployment, model: CloudModelSpec, stream: RequestStream,
                      taken: np.ndarray, period_s: float | None = None) -> float | None:
    """The share of the prompts of `stream`'s requests `taken` that a token limit leaves
    out as cache reads: Anthropic's (`input_output`) and Bedrock's (`bedrock_reserve`, in
    what a request counts in the end); None for the others, which count the whole prompt,
    or without shared prefixes. `period_s`: the stream's span, a stretch of a long run
    (the cache starts warm)."""
    if accounting_of(spec, model) not in CACHE_READS_UNCOUNTED:
        return None
    return simulated_cache_share(
        model, taken, arrival_s=stream.arrival_s, group=stream.prefix_group,
        prefix=stream.prefix_tokens, keep=stream.cache_write_groups(),
        prompts=stream.prompt_tokens,
        turns=None if stream.session is None else stream.session >= 0, period_s=period_s,
        side_calls=stream.side_calls())


def fits_model(spec: CloudDeployment, model: CloudModelSpec,
               prompts: Sequence[int] | np.ndarray,
               outputs: Sequence[int] | np.ndarray) -> np.ndarray:
    """Which requests the model can take: the prompt and the answer asked for (the client's
    max_tokens, else the answer's own length) within the catalog's context window, the
    prompt within its maximum input, that answer within the maximum output. The others the
    provider refuses (HTTP 400): they never reach the limits."""
    asked = np.full(len(outputs), spec.limits.max_tokens) if spec.limits.max_tokens \
        else np.asarray(outputs)
    fits: np.ndarray = np.asarray(prompts) + asked <= model.context_tokens
    if model.max_input_tokens is not None:
        fits &= np.asarray(prompts) <= model.max_input_tokens
    if model.max_output_tokens is not None:
        fits &= asked <= model.max_output_tokens
    return fits


def token_mix(spec: CloudDeployment, prompts: Sequence[int] | np.ndarray,
              outputs: Sequence[int] | np.ndarray) -> tuple[float, float, float]:
    """(tokens a call is charged, tokens it uses, its prompt's), means over the requests:
    prompt + max_tokens (the output when none is set), prompt + output, and prompt."""
    prompt, output = float(np.mean(prompts)), float(np.mean(outputs))
    reserve = float(spec.limits.max_tokens) if spec.limits.max_tokens else output
    return prompt + reserve, prompt + output, prompt


def sustained_limit(spec: CloudDeployment, model: CloudModelSpec,
                    stream: RequestStream, period_s: float | None = None) -> Sustained | None:
    """The request rate `spec`'s limits admit over a long run at `stream`'s token mix
    (as `CloudEndpoint` charges a call); None: no limits. Requests the model refuses never
    reach the limits: the rate is the whole stream's at which those it takes reach them."""
    fits = fits_model(spec, model, stream.prompt_tokens, stream.output_tokens)
    if not fits.any():
        return None
    share = limit_cache_share(spec, model, stream, fits, period_s)
    found = make_limiter(spec, model, share).sustained(
        *token_mix(spec, stream.prompt_tokens[fits], stream.output_tokens[fits]))
    if found is None:
        return None
    return found.scaled(len(fits) / int(fits.sum()))


class CloudEndpoint:
    """One provider model serving requests routed to it."""

    def __init__(self, env: simpy.Environment, name: str, spec: CloudDeployment,
                 model: CloudModelSpec, work: Workload, *, seed: int, horizon_s: float,
                 duration_s: float | None = None) -> None:
        """`duration_s`: the arrivals' span (a stretch of a long run: the share of prompts
        the provider's cache answers is taken with the cache warm); None: cold."""
        self.env, self.spec, self.model, self.work = env, spec, model, work
        #: per request, whether the model can take it at all (the rest it refuses)
        self.fits = fits_model(spec, model, work.prompts, work.outputs)
        self.rec = work.records
        self.rng = np.random.default_rng([seed, 11, zlib.crc32(name.encode())])
        self.limiter = make_limiter(spec, model)
        #: the provider's prompt cache as calls reach it, where the workload shares
        #: prefixes: what it answers is read at once, and Anthropic's input tokens/min does
        #: not count it
        self.cache: PromptCache | None = None
        #: Anthropic's input tokens/min leaves cache reads out (Gemini's counts the prompt)
        self.cache_reads_uncounted = type(self.limiter) is InputOutput
        limiter = self.limiter
        if work.groups is not None and work.shared is not None \
                and model.cached_input_usd_per_mtok is not None:
            self.cache = PromptCache(min_tokens=model.min_cacheable_tokens,
                                     ttl_s=model.cache_ttl_s,
                                     step_tokens=model.cache_hit_step_tokens)
        if self.cache is not None and isinstance(limiter, InputOutput | BedrockReserve) \
                and type(limiter) is not InputOnly:
            # what priming and sustained rates count: the share the cache answers when
            # every request the model takes reaches it (each call is charged its own)
            share = simulated_cache_share(
                model, self.fits, arrival_s=np.asarray(work.arrivals),
                group=np.asarray(work.groups), prefix=np.asarray(work.shared),
                keep=None if work.keep_groups is None else np.asarray(work.keep_groups),
                prompts=np.asarray(work.prompts),
                turns=None if work.turns is None else np.asarray(work.turns),
                period_s=duration_s,
                side_calls=None if work.side_calls is None else np.asarray(work.side_calls))
            if share is not None:
                limiter.uncached_share = 1.0 - share
        self.outages = outage_windows(spec, horizon_s, self.rng)
        self.settles = isinstance(self.limiter, BedrockReserve | InputOutput)
        #: the latency simulated: the scenario's figures over the catalog model's measured
        #: ones over llmplan's defaults
        self.latency = lat = spec.latency_with(model)
        self.ttft_mu = math.log(lat.ttft_ms.median / 1e3)
        self.ttft_sigma = math.log(lat.ttft_ms.p95 / lat.ttft_ms.median) / Z95
        self.rate_mu = math.log(lat.output_tokens_per_s.median)
        self.rate_sigma = math.log(lat.output_tokens_per_s.median
                                   / lat.output_tokens_per_s.p5) / Z95
        self.on_give_up: GiveUp | None = None
        self.calls = 0
        self.charged_tokens = 0.0
        #: attempts the provider accepted and worked on until the client's timeout gave
        #: up on them (billed: the prompt, and the answer's tokens generated by then)
        self.abandoned_attempts = 0
        self.abandoned_input_tokens = 0
        self.abandoned_output_tokens = 0.0
        #: of those, answers the provider cut at the client's max_tokens
        self.cut_off = 0

    def prime(self, span_s: float) -> None:
        """Start the limits as the same traffic, kept up, leaves them (the stream's
        requests per second over `span_s`, its length in time, at its token mix), and the
        provider's prompt cache too (`PromptCache.warm`)."""
        work, fits = self.work, self.fits
        self.warm_cache(fits, span_s)
        if span_s > 0 and fits.any():
            prompts, outputs = np.asarray(work.prompts), np.asarray(work.outputs)
            self.limiter.prime(int(fits.sum()) / span_s,
                               *token_mix(self.spec, prompts[fits], outputs[fits]))

    def warm_cache(self, sent: np.ndarray, span_s: float) -> None:
        """Start the provider's prompt cache as the requests `sent` here, kept up over a
        window of `span_s`, leave it (`PromptCache.warm`; a hybrid's: those its routes send
        the API)."""
        work = self.work
        if self.cache is None or span_s <= 0:
            return
        assert work.groups is not None and work.shared is not None
        groups, shared = np.asarray(work.groups), np.asarray(work.shared)
        own = np.zeros(len(groups), dtype=bool)
        if work.turns is not None and work.keep_groups is not None:
            own = np.asarray(work.turns) & (np.asarray(work.keep_groups) == groups)
        self.cache.warm(np.asarray(work.arrivals), groups, shared,
                        self.fits & sent & (groups >= 0) & (shared >= self.cache.minimum)
                        & ~own, span_s)

    def down_until(self, t: float) -> float | None:
        for start, end in self.outages:
            if start <= t < end:
                return end
            if start > t:
                return None
        return None

    def submit(self, rid: int, t: float) -> None:
        """A request handed to this API at time t (env.now == t). One the model cannot
        take (`fits_model`) is refused at once, as the provider answers a call whose
        prompt and max_tokens overrun the context window, or whose max_tokens exceeds the
        maximum output (HTTP 400, nothing charged). The client is taken to ask for the
        answer's length when limits.max_tokens is unset (Bedrock still reserves its
        maximum: `reserved_output`); a client sending no max_tokens at all would instead
        get the answer cut off at the limit, and billed: too long either way."""
        if not self.fits[rid]:
            self._give_up(rid, t, TOO_LONG)
            return
        self._attempt(rid, t, 0)

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        self.env.timeout(max(0.0, delay_s)).callbacks.append(lambda _: action())

    def _attempt(self, rid: int, t: float, attempt: int) -> None:
        rec, spec = self.rec, self.spec
        rec.attempts[rid] += 1
        self.calls += 1
        rtt = self.latency.network_rtt_ms / 1e3
        if self.down_until(t) is not None:
            if spec.outages.mode == "timeouts":
                wait = spec.retry.request_timeout_s
                self._later(wait, lambda: self._retry(rid, t + wait, attempt, None, TIMED_OUT))
            else:
                self._later(rtt, lambda: self._retry(rid, t + rtt, attempt, None, FAILED))
            return
        prompt, output = self.work.prompts[rid], self.work.outputs[rid]
        reserve = reserved_output(spec, self.model, output)
        cached = None if self.cache is None else self._cache_read(rid, t)
        if spec.limits.shared_pool_throttle_probability and \
                self.rng.random() < spec.limits.shared_pool_throttle_probability:
            admitted, charged, retry_after = False, 0.0, 1.0
        else:
            admitted, charged, retry_after = self.limiter.try_acquire(
                t, prompt, reserve, cached if self.cache_reads_uncounted else None)
        if not admitted:
            rec.throttles[rid] += 1
            self._later(rtt, lambda: self._retry(rid, t + rtt, attempt, retry_after, THROTTLED))
            return
        self.charged_tokens += charged
        if self.cache is not None:
            self._cache_visit(rid, t)
        # the provider reads the prompt its cache does not hold before the first token
        ttft = rtt + float(self.rng.lognormal(self.ttft_mu, self.ttft_sigma)) \
            + (prompt - (cached or 0)) / self.latency.prefill_tokens_per_s
        rate = float(self.rng.lognormal(self.rate_mu, self.rate_sigma))
        # the provider stops at the client's max_tokens: an answer (hidden reasoning first)
        # longer than that is cut off, billed and useless
        generated = min(output, spec.limits.max_tokens or output)
        cut = generated < output
        total = ttft + (generated - 1) / rate
        if total > spec.retry.request_timeout_s:
            wait = spec.retry.request_timeout_s
            # the provider read the prompt and streamed tokens until the client hung up:
            # billing stops at the last token generated, not at nothing
            made = 0.0 if wait <= ttft else min(float(generated), 1.0 + (wait - ttft) * rate)
            self.abandoned_attempts += 1
            self.abandoned_input_tokens += prompt
            self.abandoned_output_tokens += made
            if self.settles:
                used_so_far = self.limiter.final_tokens(prompt, cached, made)
                self._later(wait, lambda: self.limiter.settle(t + wait, charged, used_so_far))
            self._later(wait, lambda: self._retry(rid, t + wait, attempt, None, TIMED_OUT))
            return
        if cut:
            # billed like an attempt given up on; asking again with the same max_tokens
            # would be cut again: the request ends too long for the client's limit
            self.abandoned_attempts += 1
            self.cut_off += 1
            self.abandoned_input_tokens += prompt
            self.abandoned_output_tokens += generated
            if self.settles:
                counted = self.limiter.final_tokens(prompt, cached, generated)
                self._later(total, lambda: self.limiter.settle(t + total, charged, counted))
            self._later(total, lambda: self._give_up(rid, t + total, TOO_LONG))
            return
        rec.start_s[rid] = t if rec.start_s[rid] < 0 else rec.start_s[rid]
        rec.first_token_s[rid] = t + ttft
        rec.finish_s[rid] = t + total
        if rec.on_end is not None:
            rec.on_end(rid)
        rec.outcome[rid] = OK
        rec.served_by[rid] = SERVED_CLOUD
        if self.settles:
            used = self.limiter.final_tokens(prompt, cached, output)
            self._later(total, lambda: self.limiter.settle(t + total, charged, used))

    def _give_up(self, rid: int, t: float, outcome: int) -> None:
        """The request ends at t without an answer (a hybrid may take it back)."""
        rec = self.rec
        rec.outcome[rid], rec.finish_s[rid] = outcome, t
        if rec.on_end is not None:
            rec.on_end(rid)
        if self.on_give_up is not None:
            self.on_give_up(rid, t, outcome)

    def _cache_read(self, rid: int, t: float) -> int:
        assert self.cache is not None and self.work.groups is not None \
            and self.work.shared is not None
        return self.cache.read(t, self.work.groups[rid], self.work.shared[rid])

    def _cache_visit(self, rid: int, t: float) -> None:
        work = self.work
        assert self.cache is not None and work.groups is not None and work.shared is not None
        keep = -1 if work.keep_groups is None else work.keep_groups[rid]
        turn = keep != work.groups[rid] if work.turns is None else work.turns[rid]
        self.cache.visit(t, work.groups[rid], work.shared[rid], keep=keep,
                         prompt=work.prompts[rid], turn=turn,
                         side=work.side_calls is not None and work.side_calls[rid])

    def _retry(self, rid: int, t: float, attempt: int, retry_after: float | None,
               failure: int) -> None:
        """The attempt failed at time t: back off and call again, or give up."""
        retry = self.spec.retry
        if attempt >= retry.max_retries:
            self._give_up(rid, t, failure)
            return
        delay = min(retry.max_backoff_s, retry.initial_backoff_s * retry.multiplier ** attempt)
        if retry.jitter == "full":
            delay = float(self.rng.uniform(0.0, delay))
        elif retry.jitter == "equal":
            delay = delay / 2 + float(self.rng.uniform(0.0, delay / 2))
        if retry.honor_retry_after and retry_after is not None:
            # a request that can never fit (larger than the limit), or a retry-after past
            # what the client waits for (a daily limit's): the client gives up now
            if retry_after > retry.max_retry_after_s:
                self._give_up(rid, t, failure)
                return
            delay = max(delay, retry_after)
        self._later(delay, lambda: self._attempt(rid, t + delay, attempt + 1))
