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

`identifiability` names what the steps cannot determine; `quality_gate` turns those and
out-of-bounds results into problems that say what is missing and how to get it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from llmplan.fidelity.timeline import ColdStart, StepSample

TRIM_FRACTION = 0.05          # per kind: the worst 5% by relative residual are refitted without
MIN_STEPS = 8
MIN_PREFILL_STEPS = 20        # steps that carried a prompt
MIN_DECODE_SIZES = 2          # distinct decode batch sizes ...
MIN_STEPS_PER_SIZE = 5        # ... each seen at least this often
MIN_R2 = 0.5                  # a collapsed fit scores about 0; a noisy CPU server 0.7-0.97
MAX_KIND_BIAS_PCT = 15.0      # held in: total predicted vs measured time of either kind
NOISY_STEP_ERROR_PCT = 35.0   # median |error| of single steps above this: a note (jitter)
MAX_OVERHEAD_SHARE = 0.5      # client overhead / median cold-start TTFT
MIN_COLD_STARTS = 5           # fewer: their median overhead is capped by the fastest requests


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


@dataclass(frozen=True)
class Finding:
    """Something the data cannot support: `field` is what it concerns, `fix` how to get it."""

    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.fix}"


def _design(samples: list[StepSample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.array([[1.0, s.prefill_tokens, s.decode_seqs, s.kv_tokens, s.prefill_pairs]
                  for s in samples])
    y = np.array([s.duration_s for s in samples])
    return X, y, X[:, 1] > 0


def _trim_by_kind(relative: np.ndarray, prefill: np.ndarray) -> np.ndarray:
    """Keep all but the worst TRIM_FRACTION of each kind (a kind is never emptied)."""
    keep = np.ones(relative.size, dtype=bool)
    for kind in (prefill, ~prefill):
        if kind.sum() >= 1 / TRIM_FRACTION:        # too few to trim: keep them all
            cut = np.percentile(relative[kind], 100 * (1 - TRIM_FRACTION))
            keep[kind] = relative[kind] <= cut
    return keep


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
    keep = _trim_by_kind(relative, prefill)
    coef, _ = nnls(X[keep], y[keep])
    predicted = X @ coef
    error_pct = 100 * np.abs(predicted - y) / np.maximum(y, 1e-9)
    ss_res = float(np.sum((y - predicted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2)) or 1e-30
    # a cold start is one step with only the prompt: what is left is client-side time
    leftovers = [c.ttft_s - (coef[0] + coef[1] * c.prompt_tokens + coef[4] * c.prefill_pairs)
                 for c in cold]
    overhead = max(0.0, float(np.median(leftovers))) if leftovers else 0.0
    if first_tokens and len(leftovers) < MIN_COLD_STARTS:
        fastest = min(f.ttft_s - (coef[0] + coef[1] * f.prompt_tokens
                                  + coef[4] * f.prefill_pairs) for f in first_tokens)
        overhead = max(0.0, min(overhead, fastest))
    return Fit(coefficients_s=(float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3]),
                               float(coef[4])),
               client_overhead_s=overhead, samples=len(samples), cold_starts=len(cold),
               r2=1.0 - ss_res / ss_tot, rmse_ms=math.sqrt(ss_res / len(y)) * 1e3,
               median_abs_error_pct=float(np.median(error_pct)),
               prefill=kind_quality(predicted, y, prefill, keep),
               decode=kind_quality(predicted, y, ~prefill, keep),
               median_cold_ttft_s=float(np.median([c.ttft_s for c in cold])) if cold else None)


def identifiability(samples: list[StepSample]) -> tuple[list[Finding], list[Finding]]:
    """(blocking, advisory) findings about what the steps cannot determine."""
    blocking: list[Finding] = []
    advisory: list[Finding] = []
    n = len(samples)
    with_prompt = sum(1 for s in samples if s.prefill_tokens > 0)
    if with_prompt < MIN_PREFILL_STEPS:
        blocking.append(Finding(
            "per_prefill_token_us",
            f"only {with_prompt:,} of {n:,} steps carried a prompt (at least "
            f"{MIN_PREFILL_STEPS} are needed to fit what a prompt token costs)",
            "run a level with more arrivals (more requests, or a higher rate with --sweep), "
            "or fit several runs together"))
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
    if 0 < len(prompts) < 3:
        advisory.append(Finding(
            "per_prefill_token_us",
            f"prompt tokens per step took only {len(prompts)} value(s); the per-token cost "
            f"is an extrapolation away from {', '.join(map(str, sorted(prompts)))} tokens",
            "use a workload whose prompt lengths vary (uniform or lognormal)"))
    decoding = [s for s in samples if s.decode_seqs > 0]
    if len(decoding) >= MIN_STEPS:
        D = np.array([s.decode_seqs for s in decoding], dtype=float)
        K = np.array([s.kv_tokens for s in decoding], dtype=float)
        if np.std(K) > 0 and np.std(D) > 0 and abs(np.corrcoef(D, K)[0, 1]) > 0.995:
            advisory.append(Finding(
                "per_kv_token_ns",
                "KV tokens per step moved in lockstep with the batch size, so the KV-token "
                "and per-sequence costs are not told apart (their sum is)",
                "vary prompt lengths so batches of one size hold different contexts"))
    return blocking, advisory


def quality_gate(fit: Fit, blocking: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(every reason not to trust the fit, notes), each with how to fix it."""
    reasons = list(blocking)
    notes: list[Finding] = []
    fixed, prefill, decode, _, _ = fit.coefficients_s
    more = "run more requests per level, or fit several runs of this server together"
    if fit.r2 < MIN_R2:
        reasons.append(Finding("fit.r2", f"R2 {fit.r2:.3f} is under {MIN_R2}: the step model "
                               f"explains too little of the measured step times", more))
    for name, kind in (("prefill", fit.prefill), ("decode", fit.decode)):
        if kind.bias_pct is not None and abs(kind.bias_pct) > MAX_KIND_BIAS_PCT:
            reasons.append(Finding(
                f"fit.{name}", f"{name} steps take {-kind.bias_pct:+.0f}% more time in total "
                f"than the fit predicts (held in; at most {MAX_KIND_BIAS_PCT:.0f}%)",
                "check that the server ran nothing else during the test, then " + more))
        err = kind.median_abs_error_pct
        if err is not None and err > NOISY_STEP_ERROR_PCT:
            notes.append(Finding(
                f"fit.{name}", f"single {name} steps are {err:.0f}% off (median): the machine's "
                f"jitter; whole requests average it out", "run on a quieter machine"))
    if fit.prefill.steps > 0 and prefill <= 0:
        reasons.append(Finding("per_prefill_token_us", "the fitted prompt-token cost is 0 "
                               "although prompts were prefilled", more))
    if fixed <= 0 and decode <= 0:
        reasons.append(Finding("fixed_ms", "neither a fixed step cost nor a per-sequence cost "
                               "was found", more))
    cold = fit.median_cold_ttft_s
    if cold and fit.client_overhead_s > MAX_OVERHEAD_SHARE * cold:
        reasons.append(Finding(
            "client_overhead_ms",
            f"the client overhead ({fit.client_overhead_s * 1e3:.0f} ms) is more than "
            f"{MAX_OVERHEAD_SHARE:.0%} of the median cold-start TTFT ({cold * 1e3:.0f} ms): "
            f"the prefill fit does not explain first tokens", more))
    return reasons, notes
