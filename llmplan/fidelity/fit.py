"""The step-time fit: robust, checked for what the data can and cannot tell, and gated.

    step_s = fixed + per_prefill_token * P + per_decode_seq * D + per_kv_token * K
             + per_prefill_pair * A

(A: the prefill attention's (query, key) pairs: a prompt that finds c tokens in the cache
and computes n attends n x c + n (n + 1) / 2 keys. It gets its own coefficient: on a GPU a
decode step's KV token is a memory read and a prefill pair a few tensor-core FLOPs.)

is fitted by non-negative least squares to reconstructed steps (timeline.py). Two kinds of
step carry different information: the few that prefill a prompt (P > 0) are the only ones
that say what a prompt token costs, the many decode-only ones say what a sequence and a KV
token cost. Outliers (scheduler hiccups, client stalls) are trimmed *within each kind* by
relative residual, so a trim can never remove a whole kind: an earlier version trimmed the
worst 5% of all steps, which on long-prompt workloads (prefill steps 1-3% of all, with the
largest absolute residuals) removed every prefill step and fitted a prompt-token cost of 0.

A second model is fitted next to the line, and kept when it explains the steps better
(lower AIC on relative residuals, and at least TABLE_GAIN smaller relative RMS error): a
step time measured against the step's tokens T = P + D (points at every decode batch size
seen MIN_STEPS_PER_SIZE times and at the prompt-carrying steps' terciles of T, straight in
between), plus the same K and A terms, fitted on residuals relative to the predicted step
(a shared machine's jitter grows with the step). A line charges every token alike;
llama.cpp's one-thread CPU steps do not (SmolLM2-135M: 18-24 ms for one decode, 61-72 ms
for three, 11 ms per token for a long prompt, 15 ms per token for a 13-token one), so the
line put held-out lone decodes 20-44% too slow and short prompts after a cached prefix
10-16% too fast.

`identifiability` names what the steps cannot determine; `quality_gate` turns those and
out-of-bounds results into problems that say what is missing and how to get it. The gate
judges the model that is kept: with a table, its charge for a prompt token (its rise above
the decode batch sizes), not the line it beat, which once put every prompt's cost in the
prefill pairs (per-token 0) and refused a good table, or charged prompts while the table
did not and passed a table that made them free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeResult, least_squares, nnls

from llmplan.fidelity.timeline import ColdStart, StepSample

TABLE_GAIN = 0.05             # the table's relative RMS error must be this much smaller
MAX_TABLE_SIZES = 16          # decode batch sizes that get their own point (more: spread)
TRIM_FRACTION = 0.05          # per kind: the worst 5% by relative residual are refitted without
MIN_STEPS = 8
MIN_PREFILL_STEPS = 20        # steps that carried a prompt
#: the largest prompt step must be this many times the smallest for the per-token cost to
#: be measured rather than extrapolated (107-109 tokens are one length, not three)
MIN_PROMPT_SPREAD = 1.5
#: the 95% interval of the attention's share of a prompt token's cost (pair coefficient x the
#: prompt steps' median pairs per token, over their cost per token) may be at most this wide
#: either way. Quick runs of one prompt length on a one-thread llama.cpp server: +/-77% and
#: +/-83%; two such runs of 100- and 150- or 300-token prompts fitted together: +/-21% and 7%;
#: one run of uniform 16-48-token prompts (benchmarks/heldout.py's workload): +/-27%.
MAX_PAIR_SHARE_UNCERTAINTY = 0.5
MIN_DECODE_SIZES = 2          # distinct decode batch sizes ...
MIN_STEPS_PER_SIZE = 5        # ... each seen at least this often
MIN_R2 = 0.5                  # a collapsed fit scores about 0; a noisy CPU server 0.7-0.97
MAX_KIND_BIAS_PCT = 15.0      # held in: total predicted vs measured time of either kind
NOISY_STEP_ERROR_PCT = 35.0   # median |error| of single steps above this: a note (jitter)
MAX_OVERHEAD_SHARE = 0.5      # client overhead / median cold-start TTFT
#: fewer: their median overhead is capped by the fastest requests. Six cold starts of
#: 1.5-1.8 s prompts (a fit level of long plain prompts on a one-thread CPU server) left
#: medians of +112 and -212 ms with a spread of 107-179 ms: noise, which once added 112 ms
#: to every predicted TTFT (+36% on the held-out prefix run); 45-51 cold starts of short
#: prompts gave -4 and -10 ms with a spread of 25-30 ms.
MIN_COLD_STARTS = 20


@dataclass(frozen=True)
class KindQuality:
    """How well the fit explains one kind of step (prefill-carrying or decode-only).

    `bias_pct`: the kept steps' total predicted time against their total measured time
    (what predictions of whole requests feel); `median_abs_error_pct`: single steps, which a
    shared machine's jitter dominates."""

    steps: int
    kept: int                                  # after trimming
    median_abs_error_pct: float | None
    bias_pct: float | None = None


@dataclass(frozen=True)
class TokenTable:
    """step = h(P + D) + per_kv_token x K + per_pair x A, h straight between (tokens,
    seconds) points from (0, 0), past the last at the last segment's rate."""

    tokens: tuple[int, ...]
    step_s: tuple[float, ...]
    per_kv_token_s: float
    per_pair_s: float
    #: how many of the first points are decode batch sizes (the rest the prompt steps')
    decode_points: int = 0

    def basis(self, tokens: np.ndarray) -> np.ndarray:
        return _token_basis(tokens, list(self.tokens))

    def _rise_s(self, lo: int, hi: int) -> float | None:
        """h's rise per token from point `lo` to point `hi` (None: no such span)."""
        if not 0 <= lo < hi < len(self.tokens):
            return None
        return (self.step_s[hi] - self.step_s[lo]) / (self.tokens[hi] - self.tokens[lo])

    def prompt_token_s(self) -> float:
        """What the table charges a prompt token (its attention pairs aside): h's rise per
        token across the points the prompt steps set, from the largest decode batch size
        to the largest prompt step; without such points (every prompt step within the
        decode sizes) a prompt token costs what the table charges one more sequence."""
        k = self.decode_points
        rise = self._rise_s(max(k - 1, 0), len(self.tokens) - 1) if k < len(self.tokens) \
            else self._rise_s(0, len(self.tokens) - 1)
        return rise if rise is not None else self.step_s[-1] / self.tokens[-1]

    def per_sequence_s(self) -> float | None:
        """What one more decoding sequence adds to a step: h's rise per token across the
        decode batch sizes (None: fewer than two)."""
        return self._rise_s(0, self.decode_points - 1)

    def predict(self, tokens: np.ndarray, kv: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        predicted: np.ndarray = self.basis(tokens) @ np.asarray(self.step_s) \
            + self.per_kv_token_s * kv + self.per_pair_s * pairs
        return predicted


@dataclass(frozen=True)
class Fit:
    coefficients_s: tuple[float, float, float, float, float]   # fixed, P, D, K, A
    client_overhead_s: float
    samples: int
    cold_starts: int
    r2: float
    rmse_ms: float
    median_abs_error_pct: float
    prefill: KindQuality
    decode: KindQuality
    median_cold_ttft_s: float | None
    #: the measured step-time table when it explains the steps better than the line
    #: (coefficients_s is then the line it beat)
    table: TokenTable | None = None
    #: what one observation of the fit is: an engine step rebuilt from the records, or
    #: (from vLLM's /metrics) a scrape interval of many steps
    observed: str = "step"

    def prompt_token_s(self) -> float:
        """What the kept model charges a prompt token (its attention pairs aside): the
        table's, when it was kept, else the line's coefficient."""
        return self.table.prompt_token_s() if self.table is not None \
            else self.coefficients_s[1]

    def step_cost_found(self) -> bool:
        """Whether the kept model charges a decode step anything beyond its KV reads: the
        line's fixed or per-sequence cost, the table's step at its first point."""
        if self.table is not None:
            return self.table.step_s[0] > 0
        fixed, _, decode, _, _ = self.coefficients_s
        return fixed > 0 or decode > 0

    def decode_split_s(self, samples: list[StepSample]) -> tuple[float, float]:
        """(what one more decoding sequence costs, what a KV token costs) in the kept
        model; the table's per-sequence cost is its rise across the decode batch sizes."""
        _, _, per_seq, per_kv, _ = self.coefficients_s
        if self.table is None:
            return per_seq, per_kv
        rise = self.table.per_sequence_s()
        if rise is None:             # one decode point: h from nothing to it
            sizes = [s.decode_seqs for s in samples if s.decode_seqs and not s.prefill_tokens]
            rise = float(self.table.predict(np.array([max(sizes, default=1)]), np.zeros(1),
                                            np.zeros(1))[0]) / max(sizes, default=1)
        return rise, self.table.per_kv_token_s


@dataclass(frozen=True)
class Finding:
    """Something the data cannot support: `field` is what it concerns, `fix` how to get it."""

    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.fix}"


def _design(samples: list[StepSample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # a row per sample, five columns even for none (a run whose one request's single token
    # came with its first step)
    X = np.array([[1.0, s.prefill_tokens, s.decode_seqs, s.kv_tokens, s.prefill_pairs]
                  for s in samples], dtype=float).reshape(-1, 5)
    y = np.array([s.duration_s for s in samples])
    return X, y, X[:, 1] > 0


def _token_basis(tokens: np.ndarray, points: list[int]) -> np.ndarray:
    """Columns whose coefficients are h at each point: straight between points (from 0 at
    no tokens), past the last one along the last segment."""
    knots = np.array([0, *points], dtype=float)
    tokens = np.asarray(tokens, dtype=float)
    basis = np.zeros((tokens.size, len(points)))
    for j in range(len(points)):
        unit = np.zeros(knots.size)
        unit[j + 1] = 1.0
        basis[:, j] = np.interp(tokens, knots, unit)
    past = tokens > knots[-1]
    beyond = (tokens[past] - knots[-1]) / (knots[-1] - knots[-2])
    basis[past, -1] = 1.0 + beyond
    if len(points) >= 2:
        basis[past, -2] = -beyond
    return basis


def _table_points(samples: list[StepSample]) -> tuple[list[int], int]:
    """Where the table is measured: every decode batch size seen MIN_STEPS_PER_SIZE times
    (at most MAX_TABLE_SIZES, spread), and the terciles of the prompt-carrying steps'
    tokens above them; with how many of the points are batch sizes."""
    counts: dict[int, int] = {}
    for s in samples:
        if s.prefill_tokens == 0:
            counts[s.decode_seqs] = counts.get(s.decode_seqs, 0) + 1
    sizes = sorted(d for d, n in counts.items() if d > 0 and n >= MIN_STEPS_PER_SIZE)
    if len(sizes) > MAX_TABLE_SIZES:
        picks = np.linspace(0, len(sizes) - 1, MAX_TABLE_SIZES).round().astype(int)
        sizes = [sizes[i] for i in sorted(set(picks.tolist()))]
    prompt_steps = [s.prefill_tokens + s.decode_seqs for s in samples if s.prefill_tokens]
    above = max(sizes, default=0)
    terciles = set(np.percentile(prompt_steps, [0, 100 / 3, 200 / 3, 100]).round()
                   .astype(int).tolist()) if prompt_steps else set()
    return sizes + sorted(t for t in terciles if t > above), len(sizes)


def _relative_nnls(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NNLS of residuals relative to the step's predicted time: weighted by 1 / y first,
    then twice by 1 / the prediction (weighting by the measured time alone would favour
    the steps that happened to run fast, and fit every step a few % short)."""
    scale = np.maximum(y, 1e-6)
    for _ in range(3):
        coef = np.asarray(nnls(X / scale[:, None], y / scale)[0])
        scale = np.maximum(X @ coef, 1e-6)
    return coef


def _fit_table(samples: list[StepSample], y: np.ndarray, prefill: np.ndarray
               ) -> tuple[TokenTable, np.ndarray] | None:
    """The token table fitted on relative residuals (trimmed within the prompt steps and
    within each batch size), with the steps it kept; None where fewer than three points
    can be placed."""
    points, decode_points = _table_points(samples)
    tokens = np.array([s.prefill_tokens + s.decode_seqs for s in samples], dtype=float)
    kv = np.array([s.kv_tokens for s in samples], dtype=float)
    pairs = np.array([s.prefill_pairs for s in samples], dtype=float)
    if len(points) < 3:
        return None
    # trimmed within the prompt steps and within each batch size of the others, so that no
    # size (whose point only its own steps set) can lose all its steps to the trim
    group = np.where(prefill, -1, np.array([s.decode_seqs for s in samples]))
    # a step with more tokens takes no less time: the table's values are fitted as their
    # non-negative increments (column i adds to every point from i on), so noise between
    # neighbouring batch sizes cannot make 108 tokens faster than 107
    basis = _token_basis(tokens, points)
    increments = np.cumsum(basis[:, ::-1], axis=1)[:, ::-1]
    X = np.column_stack([increments, kv, pairs])
    coef = _relative_nnls(X, y)
    keep = _trim_by_group(np.abs(X @ coef - y) / np.maximum(y, 1e-9), group)
    coef = _relative_nnls(X[keep], y[keep])
    step_s = np.cumsum(coef[:-2])
    table = TokenTable(tokens=tuple(points), step_s=tuple(float(v) for v in step_s),
                       per_kv_token_s=float(coef[-2]), per_pair_s=float(coef[-1]),
                       decode_points=decode_points)
    return table, keep


def _aic(relative: np.ndarray, parameters: int) -> float:
    return float(relative.size * np.log(np.mean(relative ** 2) + 1e-300) + 2 * parameters)


def _trim_by_group(relative: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Keep all but the worst TRIM_FRACTION within each group (none is ever emptied)."""
    keep = np.ones(relative.size, dtype=bool)
    for g in np.unique(group):
        members = group == g
        if members.sum() >= 1 / TRIM_FRACTION:        # too few to trim: keep them all
            cut = np.percentile(relative[members], 100 * (1 - TRIM_FRACTION))
            keep[members] = relative[members] <= cut
    return keep


def trim_by_kind(relative: np.ndarray, prefill: np.ndarray) -> np.ndarray:
    """Keep all but the worst TRIM_FRACTION of each kind (a kind is never emptied)."""
    return _trim_by_group(relative, prefill.astype(int))


def kind_quality(predicted: np.ndarray, y: np.ndarray, kind: np.ndarray,
                 keep: np.ndarray) -> KindQuality:
    """Held-in quality of one kind of step (see KindQuality)."""
    error_pct = 100 * np.abs(predicted - y) / np.maximum(y, 1e-9)
    kept = kind & keep
    measured = float(y[kept].sum())
    return KindQuality(steps=int(kind.sum()), kept=int(kept.sum()),
                       median_abs_error_pct=float(np.median(error_pct[kind]))
                       if kind.any() else None,
                       bias_pct=100 * (float(predicted[kept].sum()) - measured) / measured
                       if measured > 0 else None)


def fit_step_time(samples: list[StepSample], cold: list[ColdStart],
                  first_tokens: list[ColdStart] | None = None) -> Fit:
    """NNLS fit of the five coefficients (trimmed per kind), plus the client overhead: the
    median of what cold starts leave after their prefill step. From fewer than
    MIN_COLD_STARTS cold starts, at most what any request (`first_tokens`: every finished
    one) leaves after its own prefill alone: no first token comes sooner than the
    overhead plus its prefill, so two cold starts whose prefill the fit underestimates
    cannot claim an overhead the fastest requests rule out (two once claimed 155 ms on a
    server whose requests showed none). With enough cold starts their median stands: the
    smallest of hundreds of leftovers sits in the prefill's noise (-55 ms on a run whose
    42 cold starts gave 15 ms)."""
    if len(samples) < MIN_STEPS:
        raise ValueError(f"only {len(samples)} busy steps could be reconstructed: load the "
                         f"server with concurrent requests (several in flight) to calibrate")
    X, y, prefill = _design(samples)
    coef, _ = nnls(X, y)
    relative = np.abs(X @ coef - y) / np.maximum(y, 1e-9)
    keep = trim_by_kind(relative, prefill)
    coef, _ = nnls(X[keep], y[keep])
    predicted = X @ coef
    table = None
    tabulated = _fit_table(samples, y, prefill)
    if tabulated is not None:
        candidate, kept = tabulated
        tokens = X[:, 1] + X[:, 2]
        on_table = candidate.predict(tokens, X[:, 3], X[:, 4])
        rel_table = ((on_table - y) / np.maximum(y, 1e-9))[kept]
        rel_line = ((predicted - y) / np.maximum(y, 1e-9))[kept]
        if _aic(rel_table, len(candidate.tokens) + 2) < _aic(rel_line, 5) and \
                np.sqrt(np.mean(rel_table ** 2)) < (1 - TABLE_GAIN) * np.sqrt(
                    np.mean(rel_line ** 2)):
            table, predicted, keep = candidate, on_table, kept
    error_pct = 100 * np.abs(predicted - y) / np.maximum(y, 1e-9)
    ss_res = float(np.sum((y - predicted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2)) or 1e-30
    # a cold start is one step with only the prompt: what is left is client-side time
    def alone_s(first: ColdStart) -> float:
        """A prompt's prefill step with nothing else running."""
        if table is not None:
            return float(table.predict(np.array([first.prompt_tokens]), np.zeros(1),
                                       np.array([first.prefill_pairs]))[0])
        return float(coef[0] + coef[1] * first.prompt_tokens + coef[4] * first.prefill_pairs)

    leftovers = [c.ttft_s - alone_s(c) for c in cold]
    overhead = max(0.0, float(np.median(leftovers))) if leftovers else 0.0
    if first_tokens and len(leftovers) < MIN_COLD_STARTS:
        fastest = min(f.ttft_s - alone_s(f) for f in first_tokens)
        overhead = max(0.0, min(overhead, fastest))
    return Fit(coefficients_s=(float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3]),
                               float(coef[4])),
               client_overhead_s=overhead, samples=len(samples), cold_starts=len(cold),
               r2=1.0 - ss_res / ss_tot, rmse_ms=math.sqrt(ss_res / len(y)) * 1e3,
               median_abs_error_pct=float(np.median(error_pct)),
               prefill=kind_quality(predicted, y, prefill, keep),
               decode=kind_quality(predicted, y, ~prefill, keep),
               median_cold_ttft_s=float(np.median([c.ttft_s for c in cold])) if cold else None,
               table=table)


def identifiability(samples: list[StepSample], cold_starts: int = 0
                    ) -> tuple[list[Finding], list[Finding]]:
    """(blocking, advisory) findings about what the steps cannot determine. `cold_starts`:
    prompts prefilled on an idle server, whose step has no previous step's end to be timed
    from (timeline.steps keeps them as cold starts, not steps)."""
    blocking: list[Finding] = []
    advisory: list[Finding] = []
    n = len(samples)
    with_prompt = sum(1 for s in samples if s.prefill_tokens > 0)
    if with_prompt < MIN_PREFILL_STEPS:
        many = cold_starts != 1
        idle = (f"; {cold_starts:,} more prompt{'s were' if many else ' was'} prefilled on "
                f"an idle server, where a step has no start to time it from "
                f"({'their first tokens set' if many else 'its first token sets'} the client "
                f"overhead)") if cold_starts else ""
        blocking.append(Finding(
            "per_prefill_token_us",
            f"only {with_prompt:,} of {n:,} timed steps carried a prompt (at least "
            f"{MIN_PREFILL_STEPS} are needed to fit what a prompt token costs){idle}",
            "run a level with more arrivals (more requests, or a higher rate with --sweep) "
            "so that prompts arrive while others decode, or fit several runs together"))
    sizes: dict[int, int] = {}
    for s in samples:
        if s.decode_seqs > 0:
            sizes[s.decode_seqs] = sizes.get(s.decode_seqs, 0) + 1
    seen = sorted(d for d, count in sizes.items() if count >= MIN_STEPS_PER_SIZE)
    if len(seen) < MIN_DECODE_SIZES:
        only = f"only at batch size {seen[0]}" if seen else "at no batch size often enough"
        blocking.append(Finding(
            "per_decode_seq_us",
            f"decode steps ran {only} (at least {MIN_DECODE_SIZES} sizes with "
            f"{MIN_STEPS_PER_SIZE}+ steps each are needed to separate the per-sequence cost "
            f"from the fixed cost)",
            "run an open-loop level below saturation (Poisson arrivals vary the batch), or "
            "closed-loop levels with different --users, and fit them together"))
    prompts = {s.prefill_tokens for s in samples if s.prefill_tokens > 0}
    if prompts and (len(prompts) < 3 or max(prompts) < MIN_PROMPT_SPREAD * min(prompts)):
        values = ", ".join(map(str, sorted(prompts))) if len(prompts) < 3 else \
            f"{min(prompts)}-{max(prompts)}"
        advisory.append(Finding(
            "per_prefill_token_us",
            f"prompt tokens per step took only {values}; the per-token cost is an "
            f"extrapolation away from that narrow a range",
            "use a workload whose prompt lengths vary (uniform or lognormal)"))
    pair_finding = _pairs_in_lockstep(samples)
    if pair_finding is not None:
        blocking.append(pair_finding)
    together = _batch_kv_correlation(samples)
    if together is not None and together > KV_LOCKSTEP_CORRELATION:
        advisory.append(Finding(
            "per_kv_token_ns",
            "KV tokens per step moved in lockstep with the batch size, so the KV-token "
            "and per-sequence costs are not told apart (their sum is)",
            "vary prompt lengths so batches of one size hold different contexts"))
    return blocking, advisory


def _pairs_in_lockstep(samples: list[StepSample]) -> Finding | None:
    """A blocking finding when the steps cannot tell what a prompt token costs from what
    its attention (its prefill pairs) costs. Prompts of one length, as every quick run
    sends, make the pairs a fixed multiple of the tokens: the fit then splits one cost per
    token between the two coefficients by guess, and a longer prompt's prefill is
    extrapolated on that guess, quadratic in its length or linear. A calibration from
    100-token prompts on a one-thread llama.cpp server put 42% of it in the pairs and
    predicted 600-token prompts' TTFT at +199% (measured 11.0 s), E2E at +518%; all of it
    in the tokens would have said about 8 s (-30%).

    Judged by the least-squares standard error of the pair coefficient (the pair column's
    part that the other columns do not explain, against the steps' scatter), as a share of
    what a prompt token costs at the steps' median context: a spread of contexts measures
    the split even when narrow, if the steps are steady (400 cached tokens and 10-60 new
    ones, noise-free, recover it to 5%), and prompts of one length never do."""
    X, y, prefill = _design(samples)
    if int(prefill.sum()) < MIN_STEPS or not (X[prefill, 4] > 0).any():
        return None
    coef, _ = nnls(X, y)
    keep = trim_by_kind(np.abs(X @ coef - y) / np.maximum(y, 1e-9), prefill)
    X, y, prefill = X[keep], y[keep], prefill[keep]
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    scatter = float(np.sum((y - X @ beta) ** 2)) / max(len(y) - X.shape[1], 1)
    others = X[:, :4]
    pairs = X[:, 4]
    unexplained = float(np.sum((pairs - others @ np.linalg.lstsq(others, pairs,
                                                                 rcond=None)[0]) ** 2))
    context = X[prefill, 4] / X[prefill, 1]
    per_token = float(np.median((y[prefill] - X[prefill][:, [0, 2, 3]] @ beta[[0, 2, 3]])
                                / X[prefill, 1]))
    if per_token <= 0:
        return None                  # no prompt cost at all: the gate says so
    middle = float(np.median(context))
    if unexplained <= 1e-12 * float(np.sum((pairs - pairs.mean()) ** 2)):
        share = math.inf
    else:
        share = 2 * math.sqrt(scatter / unexplained) * middle / per_token
    if share <= MAX_PAIR_SHARE_UNCERTAINTY:
        return None
    low, high = np.percentile(context, [10, 90])
    spread = f"about {low:,.0f}" if round(low) == round(high) else f"{low:,.0f}-{high:,.0f}"
    told = "nowhere (prompts of one length)" if math.isinf(share) else \
        f"only within +/-{share:.0%}"
    return Finding(
        "per_prefill_pair_ns",
        f"the prompt steps attended over {spread} (query, key) pairs per computed prompt "
        f"token (10th-90th percentile), and of a prompt token's cost ({per_token * 1e3:,.1f} "
        f"ms at these lengths) they place its attention's share {told} (95% interval): "
        f"a prompt of another length would be predicted from a guessed split",
        "fit this run together with one whose prompts are several times longer or "
        "shorter (`llmplan calibrate run-a run-b`, e.g. --prompt-tokens 100 and 400), or "
        "run a scenario whose prompt lengths vary (uniform or lognormal)")


#: Decode steps' batch size and KV tokens correlated above this move in lockstep: the two
#: costs are not told apart, whatever the fit says.
KV_LOCKSTEP_CORRELATION = 0.995


def _batch_kv_correlation(samples: list[StepSample]) -> float | None:
    """|correlation| of the batch size and the KV tokens of the steps with decodes (None:
    too few such steps, or either never varies)."""
    decoding = [s for s in samples if s.decode_seqs > 0]
    if len(decoding) < MIN_STEPS:
        return None
    D = np.array([s.decode_seqs for s in decoding], dtype=float)
    K = np.array([s.kv_tokens for s in decoding], dtype=float)
    if np.std(D) == 0 or np.std(K) == 0:
        return None
    return abs(float(np.corrcoef(D, K)[0, 1]))


#: Above this correlation of decode steps' batch size and KV tokens, a per-sequence cost the
#: fit puts at 0 says the two costs were not told apart (above KV_LOCKSTEP_CORRELATION the
#: advisory says so whatever the fit).
KV_SPLIT_CORRELATION = 0.8


def kv_split_note(fit: Fit, samples: list[StepSample]) -> Finding | None:
    """A note when the fit puts the whole cost of a decoding sequence in one of its two
    parts (the other at its bound, 0) while batch size and KV tokens moved together: the
    split is then the fit's guess, and contexts longer than the runs' are extrapolated on
    it. All in its KV tokens: a batch of short contexts comes out nearly free; none in them
    (a KV read that costs nothing, which no engine has): longer contexts cost no more."""
    per_seq, per_kv = fit.decode_split_s(samples)
    r = _batch_kv_correlation(samples)
    if r is None or not KV_SPLIT_CORRELATION < r <= KV_LOCKSTEP_CORRELATION \
            or (per_seq > 0) == (per_kv > 0):
        return None
    longest = max((s.kv_tokens // s.decode_seqs for s in samples
                   if s.decode_seqs > 0 and not s.prefill_tokens), default=0)
    where = ("in its KV tokens (per-sequence cost 0" if per_kv > 0
             else "in the sequence itself (cost per KV token 0, as if reading the cache were "
                  "free")
    return Finding(
        "per_kv_token_ns",
        f"the fit puts a decoding sequence's whole cost {where}; batch size and KV tokens "
        f"correlated at {r:.2f}): the two are not told apart, and contexts longer than these "
        f"runs' (at most {longest:,} tokens a sequence) are predicted from that guess",
        "vary prompt lengths so batches of one size hold different contexts, with contexts "
        "as long as the ones you plan for")


def quality_gate(fit: Fit, blocking: list[Finding],
                 advisory: list[Finding] | None = None) -> tuple[list[Finding], list[Finding]]:
    """(every reason not to trust the fit, notes), each with how to fix it; `advisory` (from
    identifiability) steers the fix: more requests of one prompt length would not help."""
    reasons = list(blocking)
    notes: list[Finding] = []
    more = "run more requests per level, or fit several runs of this server together"
    if any(f.field == "per_prefill_token_us" for f in advisory or []):
        more = ("use a workload whose prompt lengths vary (uniform or lognormal), then "
                + more)
    if fit.r2 < MIN_R2:
        reasons.append(Finding("fit.r2", f"R2 {fit.r2:.3f} is under {MIN_R2}: the step model "
                               f"explains too little of the measured step times", more))
    for name, kind in (("prefill", fit.prefill), ("decode", fit.decode)):
        if kind.bias_pct is not None and abs(kind.bias_pct) > MAX_KIND_BIAS_PCT:
            # bias: predicted against measured; under 0, the steps took more than predicted
            reasons.append(Finding(
                f"fit.{name}", f"{name} {fit.observed}s take {abs(kind.bias_pct):.0f}% "
                f"{'more' if kind.bias_pct < 0 else 'less'} time in total than the fit "
                f"predicts (held in; at most {MAX_KIND_BIAS_PCT:.0f}% either way)",
                "check that the server ran nothing else during the test, then " + more))
        err = kind.median_abs_error_pct
        if err is not None and err > NOISY_STEP_ERROR_PCT:
            notes.append(Finding(
                f"fit.{name}", f"single {name} {fit.observed}s are {err:.0f}% off (median): "
                f"the machine's jitter; whole requests average it out",
                "run on a quieter machine"))
    # the model that is kept is judged: a table charges prompt tokens along its points,
    # while the line it beat may have put their cost elsewhere (in the prefill pairs)
    kept = "token table's" if fit.table is not None else "fitted"
    if fit.prefill.steps > 0 and fit.prompt_token_s() <= 0:
        reasons.append(Finding("per_prefill_token_us", f"the {kept} prompt-token cost is 0 "
                               "although prompts were prefilled", more))
    if not fit.step_cost_found():
        reasons.append(Finding("fixed_ms", "neither a fixed step cost nor a per-sequence cost "
                               "was found" if fit.table is None else
                               f"the token table's step of {fit.table.tokens[0]} token"
                               f"{'s' if fit.table.tokens[0] != 1 else ''} costs nothing "
                               "beyond its KV reads", more))
    cold = fit.median_cold_ttft_s
    if cold and fit.client_overhead_s > MAX_OVERHEAD_SHARE * cold:
        reasons.append(Finding(
            "client_overhead_ms",
            f"the client overhead ({fit.client_overhead_s * 1e3:.0f} ms) is more than "
            f"{MAX_OVERHEAD_SHARE:.0%} of the median cold-start TTFT ({cold * 1e3:.0f} ms): "
            f"the prefill fit does not explain first tokens", more))
    return reasons, notes


#: Runs fitted together whose steps took more than this many times as long as each other's
#: for the same work (beyond the noise: the 95% interval of the ratio excludes 1) ran on a
#: host whose speed changed between them. The same share as validate's SPEED_AGREEMENT. The
#: fit level and its repeat of 19 recorded held-out experiments (benchmarks/heldout.py, a
#: one-thread llama.cpp server on a shared 2-core machine) read 1.00-1.085 apart.
MAX_RUN_SPEED_CHANGE = 0.10


@dataclass(frozen=True)
class RunSpeeds:
    """The step line fitted with one speed per run (steps of run r take speeds[r] times the
    line's time; the first run's is 1), with the 95% interval of the slowest run's speed
    over the fastest's, and the costs of that fit at the first run's speed (seconds:
    fixed, per prompt token, per decoding sequence, per KV token, per prefill pair)."""

    speeds: tuple[float, ...]
    slowest: int
    fastest: int
    ratio: float
    ratio_low: float
    ratio_high: float
    coefficients_s: tuple[float, float, float, float, float]

    @property
    def per_pair_s(self) -> float:
        return self.coefficients_s[4]

    @property
    def per_kv_token_s(self) -> float:
        return self.coefficients_s[3]


@dataclass(frozen=True)
class Observed:
    """One run's observations as the step line reads them: a row of (fixed, P, D, K, A) per
    observation, its fixed column the steps it holds (1 for a step rebuilt from the
    records, more for a scrape interval of vLLM's /metrics), and the seconds each took."""

    X: np.ndarray
    y: np.ndarray

    @classmethod
    def of_steps(cls, samples: list[StepSample]) -> Observed:
        X, y, _ = _design(samples)
        return cls(X, y)


def _observed(run: list[StepSample] | Observed) -> Observed:
    return run if isinstance(run, Observed) else Observed.of_steps(run)


def run_speeds(runs: Sequence[list[StepSample] | Observed]) -> RunSpeeds | None:
    """The step line with a speed of its own for each run (see RunSpeeds), fitted on
    residuals relative to the predicted observation and trimmed within each run's kind of
    observation (prompt-carrying or not); None for one run, or a run of fewer than
    MIN_STEPS observations. Relative residuals read a scrape interval of N steps as they
    read its mean step.

    A host that slows from one run to the next slows every kind of step alike, a cost
    does not: a KV-token or pair cost that the runs' longer contexts or prompts would
    have to explain shows in every step in proportion to its KV tokens or pairs, while a
    host's speed multiplies the fixed, per-sequence and per-token parts too. Fitted as one,
    runs of 100- and 400-token prompts, the second 30% slower, put the change in the KV
    and pair costs (a synthetic server with known costs: KV 9.5 times its own, pairs 0)."""
    observed = [_observed(r) for r in runs]
    if len(observed) < 2 or any(o.y.size < MIN_STEPS for o in observed):
        return None
    X = np.vstack([o.X for o in observed])
    y = np.concatenate([o.y for o in observed])
    prefill = X[:, 1] > 0
    run = np.concatenate([np.full(o.y.size, i) for i, o in enumerate(observed)])
    used = X.max(axis=0) > 0
    scale = X[:, used].max(axis=0) / max(float(y.max()), 1e-12)
    Xn = X[:, used] / scale                     # columns of comparable size for the solver
    n_coef, n_runs = int(used.sum()), len(runs)

    def relative(p: np.ndarray) -> np.ndarray:
        log_speed = np.concatenate([[0.0], p[n_coef:]])
        predicted = np.exp(log_speed[run]) * (Xn @ p[:n_coef])
        residual: np.ndarray = (predicted - y) / np.maximum(predicted, 1e-12)
        return residual

    def solve(kept: np.ndarray, start: np.ndarray) -> OptimizeResult:
        return least_squares(lambda p: relative(p)[kept], start, bounds=(lower, np.inf))

    start = np.concatenate([nnls(Xn, y)[0] + 1e-6, np.zeros(n_runs - 1)])
    lower = np.concatenate([np.zeros(n_coef), np.full(n_runs - 1, -np.inf)])
    keep = np.ones(y.size, dtype=bool)
    for _ in range(2):
        start = solve(keep, start).x
        keep = _trim_by_group(np.abs(relative(start)), 2 * run + prefill)
    solved = solve(keep, start)
    # the covariance of the free parameters (coefficients at their bound 0 held there)
    free = np.concatenate([solved.x[:n_coef] > 0, np.ones(n_runs - 1, dtype=bool)])
    jac = solved.jac[:, free]
    scatter = float(solved.fun @ solved.fun) / max(solved.fun.size - jac.shape[1], 1)
    cov_log = (scatter * np.linalg.pinv(jac.T @ jac))[-(n_runs - 1):, -(n_runs - 1):]
    log_speed = np.concatenate([[0.0], solved.x[n_coef:]])
    cov = np.zeros((n_runs, n_runs))
    cov[1:, 1:] = cov_log
    slowest, fastest = int(np.argmax(log_speed)), int(np.argmin(log_speed))
    gap = float(log_speed[slowest] - log_speed[fastest])
    half = 1.96 * math.sqrt(max(float(cov[slowest, slowest] + cov[fastest, fastest]
                                      - 2 * cov[slowest, fastest]), 0.0))
    coef = np.zeros(X.shape[1])
    coef[used] = solved.x[:n_coef] / scale
    return RunSpeeds(speeds=tuple(float(v) for v in np.exp(log_speed)), slowest=slowest,
                     fastest=fastest, ratio=math.exp(gap), ratio_low=math.exp(gap - half),
                     ratio_high=math.exp(gap + half),
                     coefficients_s=(float(coef[0]), float(coef[1]), float(coef[2]),
                                     float(coef[3]), float(coef[4])))


def _predicted_s(fit: Fit, X: np.ndarray) -> np.ndarray:
    """What the kept model (the table, else the line) predicts for each observation (a
    table is fitted to steps only: a fit of scrape intervals has none)."""
    if fit.table is not None:
        return fit.table.predict(X[:, 1] + X[:, 2], X[:, 3], X[:, 4])
    predicted: np.ndarray = X @ np.asarray(fit.coefficients_s)
    return predicted


def run_speed_findings(fit: Fit, runs: Sequence[list[StepSample] | Observed],
                       names: list[str]) -> tuple[list[Finding], list[Finding]]:
    """(blocking, advisory) findings about runs fitted together at host speeds more than
    MAX_RUN_SPEED_CHANGE apart, beyond the noise (see run_speeds).

    The fit itself reads each run's speed too (its total measured time over the total the
    kept model predicts, as validate reads a run's): where the runs did the same work at
    the same load it cannot follow the change, and reads it as the runs' speeds do (the
    calibration is then at their average speed, and validate reads each run's own); where
    their prompts, contexts or batches differ it puts the change in the costs they differ
    in (a slower host's longer queue alone makes its batches larger and their contexts
    longer), and reads the runs alike.
    What it does not read of the change went into its costs: blocking beyond
    MAX_RUN_SPEED_CHANGE (beyond the noise), a note otherwise.
    A run of fewer than MIN_STEPS observations has no speed of its own to read: the others
    are compared without it, and a note names it."""
    every = [_observed(r) for r in runs]
    compared = [i for i, o in enumerate(every) if o.y.size >= MIN_STEPS]
    unchecked = [_too_short(fit, names[i], every[i].y.size)
                 for i in range(len(every)) if i not in compared] if len(every) > 1 else []
    observed, names = [every[i] for i in compared], [names[i] for i in compared]
    found = run_speeds(observed)
    if found is None or found.ratio <= 1 + MAX_RUN_SPEED_CHANGE or found.ratio_low <= 1.0:
        return [], unchecked
    read = [float(o.y.sum()) / max(float(_predicted_s(fit, o.X).sum()), 1e-12)
            for o in observed]
    followed = read[found.slowest] / read[found.fastest]
    hidden, hidden_low = found.ratio / followed, found.ratio_low / followed
    slow, fast = names[found.slowest], names[found.fastest]
    took = (f"{slow}'s steps took {found.ratio:.2f} times as long as {fast}'s for the same "
            f"work (95% interval {found.ratio_low:.2f}-{found.ratio_high:.2f}; at most "
            f"{1 + MAX_RUN_SPEED_CHANGE:.2f} for one host): the host ran at another speed")
    if hidden > 1 + MAX_RUN_SPEED_CHANGE and hidden_low > 1.0:
        return [Finding(
            "runs",
            f"{took}, and fitted as one the change went into the costs the runs differ in: "
            f"the fit reads {slow}'s steps as {followed:.2f} times {fast}'s, "
            f"{_costs_apart(fit, found, observed, names[0])}",
            "rerun the runs back to back on a host that runs nothing else, or calibrate "
            "each run separately")], unchecked
    return [], [Finding(
        "runs",
        f"{took}; the runs did work too alike for the fit to put the change in a cost (it "
        f"reads {slow}'s steps as {followed:.2f} times {fast}'s too), so the calibration is "
        f"at their average speed",
        "rerun the runs back to back on a host that runs nothing else for its own speed; "
        "validate reads each run's speed against the calibration's"), *unchecked]


def _too_short(fit: Fit, name: str, count: int) -> Finding:
    return Finding(
        "runs",
        f"{name} gave {count:,} {fit.observed}{'s' if count != 1 else ''}, fewer than "
        f"{MIN_STEPS}: its host's speed is not compared with the other runs', and a change "
        f"of speed in it would go into the fit's costs unseen",
        "run it for longer, or leave it out")


def _costs_apart(fit: Fit, found: RunSpeeds, observed: list[Observed],
                 first: str) -> str:
    """The costs as the one fit reads them and as a speed for each run reads them: a
    prefill pair's and a KV token's where the prompts attended pairs (rebuilt steps), else
    (scrape intervals, which count no pairs) a prompt token's, a sequence's and a KV
    token's."""
    if fit.table is not None or any(o.X[:, 4].any() for o in observed):
        per_pair_s = fit.table.per_pair_s if fit.table is not None else fit.coefficients_s[4]
        per_kv_s = fit.table.per_kv_token_s if fit.table is not None \
            else fit.coefficients_s[3]
        return (f"a prefill pair at {per_pair_s * 1e9:,.1f} ns and a KV token at "
                f"{per_kv_s * 1e9:,.1f} ns, where a speed for each run reads "
                f"{found.per_pair_s * 1e9:,.1f} and {found.per_kv_token_s * 1e9:,.1f} ns")
    _, token, seq, kv, _ = fit.coefficients_s
    _, token_each, seq_each, kv_each, _ = found.coefficients_s
    return (f"a prompt token at {token * 1e6:,.1f} us, a decoding sequence at "
            f"{seq * 1e6:,.1f} us and a KV token at {kv * 1e9:,.1f} ns, where a speed for "
            f"each run reads {token_each * 1e6:,.1f} us, {seq_each * 1e6:,.1f} us and "
            f"{kv_each * 1e9:,.1f} ns (at {first}'s speed)")
