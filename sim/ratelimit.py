"""Provider rate limits as they account (REFERENCE.md), one class per accounting rule.

Every limiter answers `try_acquire(t, prompt, reserve)`: admit now (returning what it
charged) or refuse with the seconds until the request would fit (the retry-after a 429
carries). `settle(t, charged, actual)` is called when an admitted request finishes.

* RollingMinute (OpenAI and default): requests and tokens per minute as token buckets that
  refill continuously (limit/60 per second, capacity one minute's worth); a request is
  charged prompt + max_tokens when it starts. A refused call takes nothing: OpenAI says
  failed requests count toward the limit, but a bucket charged for each 429 locks out a
  client 10% over its limit for good (retries keep it empty), which the service does not.
* AzureSlices (Azure OpenAI): the per-minute quota enforced over short fixed windows (1 s or
  10 s) of limit x slice / 60 each; requests/min is 6 per 1,000 tokens/min unless given.
* BedrockReserve (AWS Bedrock): buckets like RollingMinute, charged the whole input
  (cache reads too) + maxTokens at the start (an unset maxTokens reserves the model's
  maximum output) and settled when the request finishes to input less cache reads + output
  x the model's burndown rate (5 for Claude 4 and later): AWS, "How tokens are counted in
  Amazon Bedrock" (docs.aws.amazon.com/bedrock/latest/userguide/quotas-token-burndown.html).
* InputOutput (Anthropic): input tokens/min (ITPM) charged with the prompt less what it
  reads from the prompt cache (cache reads do not count toward ITPM), output
  tokens/min (OTPM) estimated from max_tokens when the request starts and settled to the
  tokens the answer used when it ends (platform.claude.com/docs/en/api/rate-limits); the
  output limit only where the tier has one.
* InputOnly (Gemini): tokens/min counts the prompt alone (ai.google.dev/gemini-api/docs/
  rate-limits: "TPM (input)"), the answer costs nothing against it.
Daily limits, where given, are plain counters over [day k, day k+1).

Two questions planning asks of the same rules: `sustained(charge, used)`, the request rate
the limits let through for ever at a given token mix (a bucket's refill, not its one-minute
burst), and `prime(rate, charge, used)`, the state steady traffic leaves the limiter in (a
stretch of a long busy day does not start with a full minute's allowance).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

DAY_S = 86_400.0


@dataclass(frozen=True)
class Bound:
    """One limit and the request rate it alone admits for ever at a token mix."""

    requests_per_s: float
    limit: str            # e.g. "4,000 requests/min"
    per_period: float     # the limit's own figure (4,000 for "4,000 requests/min")
    field: str            # the scenario's key for it, under the deployment's limits


@dataclass(frozen=True)
class Sustained:
    """The request rate a provider's limits admit for ever, and the limit that sets it."""

    requests_per_s: float
    limit: str            # e.g. "4,000 requests/min"
    #: the binding limit's own figure (4,000 for "4,000 requests/min")
    per_period: float = field(default=0.0, compare=False)
    #: every limit the account has, each with the rate it alone admits (the binding one
    #: among them): a rate past two of them needs both raised
    bounds: tuple[Bound, ...] = field(default=(), compare=False)

    def scaled(self, factor: float) -> Sustained:
        """The same limits admitting `factor` times the requests (the stream's requests
        that never reach them, such as those the model refuses, counted too)."""
        return replace(self, requests_per_s=self.requests_per_s * factor,
                       bounds=tuple(replace(b, requests_per_s=b.requests_per_s * factor)
                                    for b in self.bounds))

    def short_of(self, requests_per_s: float) -> list[Bound]:
        """The limits that admit less than `requests_per_s` (the binding one first)."""
        binding = Bound(self.requests_per_s, self.limit, self.per_period, "")
        found = sorted((b for b in self.bounds
                        if b.requests_per_s < requests_per_s * (1 - 1e-9)),
                       key=lambda b: (b.requests_per_s, b.limit))
        return found or [binding]

    def needed_for(self, requests_per_s: float) -> str:
        """Every limit that admits less than `requests_per_s`, each scaled to sustain it at
        the same token mix (every limit's sustained rate is proportional to it), labelled as
        `limit`: raising only the binding one leaves the next one binding."""
        return " and ".join(
            f"{b.per_period * requests_per_s / b.requests_per_s:,.0f} {b.limit.split(' ', 1)[1]}"
            for b in self.short_of(requests_per_s))

    def fields_for(self, requests_per_s: float) -> list[str]:
        """The scenario's limits keys `needed_for` names, in its order."""
        return [b.field for b in self.short_of(requests_per_s) if b.field]


@dataclass
class Bucket:
    """Continuous-refill token bucket: capacity `per_min`, refill per_min/60 per second."""

    per_min: float
    level: float
    updated_s: float = 0.0

    @classmethod
    def full(cls, per_min: float) -> Bucket:
        return cls(per_min, per_min)

    def refill(self, t: float) -> None:
        self.level = min(self.per_min, self.level + (t - self.updated_s) * self.per_min / 60.0)
        self.updated_s = t

    def give_back(self, t: float, amount: float) -> None:
        """Return tokens a call was charged and did not use (never past the capacity); a
        negative amount takes what a call counted past its charge (the level may go below
        0: later calls wait until the refill has paid it off)."""
        self.refill(t)
        self.level = min(self.per_min, self.level + amount)

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` is available (0 if it is); inf if it never fits."""
        if amount > self.per_min:
            return math.inf
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing * 60.0 / self.per_min


class Limiter(ABC):
    """Admission by a provider's rate limits."""

    def __init__(self, requests_per_min: float | None, tokens_per_min: float | None,
                 requests_per_day: float | None = None,
                 tokens_per_day: float | None = None) -> None:
        self.rpm, self.tpm = requests_per_min, tokens_per_min
        self.rpd, self.tpd = requests_per_day, tokens_per_day
        self.day = -1
        self.day_requests = 0.0
        self.day_tokens = 0.0

    def _day_wait(self, t: float, tokens: float) -> float:
        day = int(t // DAY_S)
        if day != self.day:
            self.day, self.day_requests, self.day_tokens = day, 0.0, 0.0
        over = (self.rpd is not None and self.day_requests + 1 > self.rpd) or \
            (self.tpd is not None and self.day_tokens + tokens > self.tpd)
        return (day + 1) * DAY_S - t if over else 0.0

    def _charge_day(self, tokens: float) -> None:
        self.day_requests += 1
        self.day_tokens += tokens

    @abstractmethod
    def try_acquire(self, t: float, prompt: int, reserve: int,
                    cached: int | None = None) -> tuple[bool, float, float]:
        """(admitted, tokens charged, retry-after seconds when refused); `cached`: of the
        prompt, the tokens the provider's cache would answer (None: not simulated)."""

    def settle(self, t: float, charged: float, actual_tokens: float) -> None:
        """An admitted request finished, counted `actual_tokens` in the end (`final_tokens`)."""
        return None

    def final_tokens(self, prompt: int, cached: int | None, output: float) -> float:
        """What a finished request of `prompt` tokens (`cached` of them read from the
        provider's cache; None: not simulated) that generated `output` tokens counts in the
        end, as `settle` takes it: its prompt and output."""
        return float(prompt) + output

    def tokens_counted(self, charge_tokens: float, used_tokens: float,
                        prompt_tokens: float | None = None) -> float:
        """Tokens a request takes from the token limit for good, its charge (`charge_tokens`:
        prompt + max_tokens), use (`used_tokens`: prompt + output) and prompt given (the
        minute's and the day's limits alike)."""
        return charge_tokens

    def _extra_bounds(self, charge_tokens: float, used_tokens: float,
                      prompt_tokens: float | None) -> list[Bound]:
        """Sustained-rate bounds of limits beyond requests, tokens and daily ones."""
        return []

    def sustained(self, charge_tokens: float, used_tokens: float,
                  prompt_tokens: float | None = None) -> Sustained | None:
        """The most requests per second the limits admit over a long run when each request
        is charged `charge_tokens` (prompt + max_tokens) and uses `used_tokens` (prompt +
        output), both means, of which `prompt_tokens` are its prompt's (None: not known,
        taken as all); None without limits. Every limit refills at limit / period, so the
        rate is the smallest of requests/min / 60, tokens/min / 60 / tokens per request
        and the daily ones over 86,400 s."""
        tokens = self.tokens_counted(charge_tokens, used_tokens, prompt_tokens)
        bounds = [Bound(per / 60.0, f"{per:,.0f} requests/min", per, "requests_per_min")
                  for per in [self.rpm] if per]
        bounds += [Bound(per / 60.0 / tokens, f"{per:,.0f} {self.token_limit_name}", per,
                         "tokens_per_min") for per in [self.tpm] if per and tokens > 0]
        bounds += self._extra_bounds(charge_tokens, used_tokens, prompt_tokens)
        bounds += [Bound(per / DAY_S, f"{per:,.0f} requests/day", per, "requests_per_day")
                   for per in [self.rpd] if per]
        bounds += [Bound(per / DAY_S / tokens, f"{per:,.0f} tokens/day", per, "tokens_per_day")
                   for per in [self.tpd] if per and tokens > 0]
        if not bounds:
            return None
        binding = min(bounds, key=lambda b: (b.requests_per_s, b.limit))
        return Sustained(binding.requests_per_s, binding.limit, binding.per_period,
                         tuple(bounds))

    #: what the token limit counts, as the provider names it
    token_limit_name = "tokens/min"

    def prime(self, requests_per_s: float, charge_tokens: float, used_tokens: float,
              prompt_tokens: float | None = None) -> None:
        """Start as steady traffic of `requests_per_s`, each request charged and using
        these token means, leaves the limits: a bucket the traffic drains faster than it
        refills is empty (it stays at the bottom, refusing the excess), any other full
        (it stays at the top). Fixed windows and daily counters hold nothing over."""
        return None


class RollingMinute(Limiter):
    """OpenAI-style: continuously refilled per-minute buckets, prompt + max_tokens charged."""

    def __init__(self, requests_per_min: float | None, tokens_per_min: float | None,
                 requests_per_day: float | None = None,
                 tokens_per_day: float | None = None) -> None:
        super().__init__(requests_per_min, tokens_per_min, requests_per_day, tokens_per_day)
        self.requests = Bucket.full(requests_per_min) if requests_per_min else None
        self.tokens = Bucket.full(tokens_per_min) if tokens_per_min else None

    def prime(self, requests_per_s: float, charge_tokens: float, used_tokens: float,
              prompt_tokens: float | None = None) -> None:
        tokens_per_s = requests_per_s * self.tokens_counted(charge_tokens, used_tokens,
                                                             prompt_tokens)
        for bucket, demand in ((self.requests, requests_per_s), (self.tokens, tokens_per_s)):
            if bucket is not None and demand > bucket.per_min / 60.0 * (1 + 1e-9):
                bucket.level = 0.0

    def _charges(self, prompt: int, reserve: int,
                 cached: int | None) -> list[tuple[Bucket | None, float]]:
        """What a call takes from each bucket: a request, and prompt + max_tokens."""
        return [(self.requests, 1.0), (self.tokens, float(prompt + reserve))]

    def try_acquire(self, t: float, prompt: int, reserve: int,
                    cached: int | None = None) -> tuple[bool, float, float]:
        charge = float(prompt + reserve)
        wait = self._day_wait(t, charge)
        charges = self._charges(prompt, reserve, cached)
        for bucket, amount in charges:
            if bucket is not None:
                bucket.refill(t)
                wait = max(wait, bucket.wait_s(amount))
        if wait > 0:
            return False, 0.0, wait
        for bucket, amount in charges:
            if bucket is not None:
                bucket.level -= amount
        self._charge_day(charge)
        return True, charge, 0.0


class BedrockReserve(RollingMinute):
    """Bedrock: the whole input + maxTokens reserved at the start; at the end the request
    counts its input less cache reads plus its output x `output_burndown` (AWS's token
    burndown page: InputTokenCount + CacheWriteInputTokens + OutputTokenCount x burndown
    rate), the difference handed back (or taken, when the output's burndown outgrows the
    reservation)."""

    def __init__(self, requests_per_min: float | None, tokens_per_min: float | None,
                 requests_per_day: float | None = None, tokens_per_day: float | None = None,
                 *, output_burndown: float = 1.0, uncached_share: float = 1.0) -> None:
        super().__init__(requests_per_min, tokens_per_min, requests_per_day, tokens_per_day)
        #: quota tokens an output token takes (5 for Claude 4 and later on Bedrock)
        self.output_burndown = output_burndown
        #: the share of a prompt not read from the provider's cache (reads are released)
        self.uncached_share = uncached_share

    def tokens_counted(self, charge_tokens: float, used_tokens: float,
                        prompt_tokens: float | None = None) -> float:
        if prompt_tokens is None:
            return used_tokens
        return prompt_tokens * self.uncached_share \
            + (used_tokens - prompt_tokens) * self.output_burndown

    def final_tokens(self, prompt: int, cached: int | None, output: float) -> float:
        uncached = prompt * self.uncached_share if cached is None else float(prompt - cached)
        return uncached + output * self.output_burndown

    def settle(self, t: float, charged: float, actual_tokens: float) -> None:
        if self.tokens is not None:
            self.tokens.give_back(t, charged - actual_tokens)
        if self.tpd is not None:
            self.day_tokens -= charged - actual_tokens


class AzureSlices(Limiter):
    """Azure OpenAI: the minute's quota split into fixed 1 s or 10 s slices.

    A slice takes calls while they fit its share of the quota (limit x slice / 60). A call
    larger than that share (a 12,000-token prompt against 60,000 tokens/min in 1 s slices,
    or any call when the share is under one request) gets into a slice nothing else has
    used, and what it takes past the share is taken from the slices after it: Azure serves
    such calls at a small quota, no faster than the quota allows. A call larger than the
    whole minute's quota never fits.
    """

    def __init__(self, requests_per_min: float | None, tokens_per_min: float | None,
                 requests_per_day: float | None = None, tokens_per_day: float | None = None,
                 slice_s: float = 10.0) -> None:
        if requests_per_min is None and tokens_per_min is not None:
            requests_per_min = 6.0 * tokens_per_min / 1000.0   # Azure: 6 RPM per 1,000 TPM
        super().__init__(requests_per_min, tokens_per_min, requests_per_day, tokens_per_day)
        self.slice_s = slice_s
        self.window = -1
        self.used_requests = 0.0
        self.used_tokens = 0.0

    @staticmethod
    def _slices_to_wait(used: float, amount: float, cap: float) -> int:
        """Slices from this one until a call of `amount` fits: the used share (carried
        over, less `cap` a slice) is gone, or leaves room for it (0: it fits now)."""
        if used <= cap * 1e-9 or used + amount <= cap * (1 + 1e-9):
            return 0
        return max(1, min(math.ceil(used / cap - 1e-12),
                          math.ceil((used + amount - cap) / cap - 1e-12)))

    def try_acquire(self, t: float, prompt: int, reserve: int,
                    cached: int | None = None) -> tuple[bool, float, float]:
        charge = float(prompt + reserve)
        window = int(t // self.slice_s)
        request_cap = None if self.rpm is None else self.rpm * self.slice_s / 60.0
        token_cap = None if self.tpm is None else self.tpm * self.slice_s / 60.0
        if window != self.window:
            passed = window - self.window if self.window >= 0 else 1
            if request_cap is not None:
                self.used_requests = max(0.0, self.used_requests - request_cap * passed)
            if token_cap is not None:
                self.used_tokens = max(0.0, self.used_tokens - token_cap * passed)
            self.window = window
        if self.tpm is not None and charge > self.tpm:
            return False, 0.0, math.inf
        wait = self._day_wait(t, charge)
        slices = max(0 if request_cap is None else
                     self._slices_to_wait(self.used_requests, 1.0, request_cap),
                     0 if token_cap is None else
                     self._slices_to_wait(self.used_tokens, charge, token_cap))
        if slices:
            wait = max(wait, (window + slices) * self.slice_s - t)
        if wait > 0:
            return False, 0.0, wait
        self.used_requests += 1
        self.used_tokens += charge
        self._charge_day(charge)
        return True, charge, 0.0


class InputOutput(RollingMinute):
    """Anthropic: requests/min, input tokens/min charged with the prompt, and output
    tokens/min estimated from max_tokens at the start, settled to the answer's at the end."""

    token_limit_name = "input tokens/min"

    def __init__(self, requests_per_min: float | None, tokens_per_min: float | None,
                 requests_per_day: float | None = None, tokens_per_day: float | None = None,
                 *, output_tokens_per_min: float | None = None,
                 uncached_share: float = 1.0) -> None:
        super().__init__(requests_per_min, tokens_per_min, requests_per_day, tokens_per_day)
        self.output = Bucket.full(output_tokens_per_min) if output_tokens_per_min else None
        #: the share of a prompt not read from the provider's cache: cache reads do not
        #: count toward Anthropic's input tokens/min (its rate-limit docs); a call whose
        #: cache reads are simulated is charged its own uncached tokens instead
        self.uncached_share = uncached_share

    def tokens_counted(self, charge_tokens: float, used_tokens: float,
                        prompt_tokens: float | None = None) -> float:
        return used_tokens if prompt_tokens is None else prompt_tokens * self.uncached_share

    def _extra_bounds(self, charge_tokens: float, used_tokens: float,
                      prompt_tokens: float | None) -> list[Bound]:
        if self.output is None or prompt_tokens is None or used_tokens <= prompt_tokens:
            return []
        per = self.output.per_min
        return [Bound(per / 60.0 / (used_tokens - prompt_tokens),
                      f"{per:,.0f} output tokens/min", per, "output_tokens_per_min")]

    def prime(self, requests_per_s: float, charge_tokens: float, used_tokens: float,
              prompt_tokens: float | None = None) -> None:
        super().prime(requests_per_s, charge_tokens, used_tokens, prompt_tokens)
        if self.output is not None and prompt_tokens is not None and \
                requests_per_s * (used_tokens - prompt_tokens) > self.output.per_min / 60.0:
            self.output.level = 0.0

    def _charges(self, prompt: int, reserve: int,
                 cached: int | None) -> list[tuple[Bucket | None, float]]:
        uncached = prompt * self.uncached_share if cached is None else float(prompt - cached)
        return [(self.requests, 1.0), (self.tokens, uncached), (self.output, float(reserve))]

    def settle(self, t: float, charged: float, actual_tokens: float) -> None:
        # the output estimate (max_tokens) less what the answer used goes back
        if self.output is not None and charged > actual_tokens:
            self.output.give_back(t, charged - actual_tokens)


class InputOnly(InputOutput):
    """Gemini: requests/min and tokens/min of the prompt alone (no output limit)."""

    def __init__(self, requests_per_min: float | None, tokens_per_min: float | None,
                 requests_per_day: float | None = None,
                 tokens_per_day: float | None = None) -> None:
        super().__init__(requests_per_min, tokens_per_min, requests_per_day, tokens_per_day)


LIMITERS: dict[str, type[Limiter]] = {
    "rolling_minute": RollingMinute,
    "bedrock_reserve": BedrockReserve,
    "azure_slices": AzureSlices,
    "input_output": InputOutput,
    "input_only": InputOnly,
}

DEFAULT_ACCOUNTING = {"openai": "rolling_minute", "anthropic": "input_output",
                      "google": "input_only", "bedrock": "bedrock_reserve",
                      "azure_openai": "azure_slices"}
