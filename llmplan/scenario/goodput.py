"""The goodput rule, one definition for the simulator and the load tests.

A request counts towards goodput when it finished and every latency its SLO bounds is within
the bound. A request with one output token has no TPOT, so it cannot break a TPOT bound; a
request with no TTFT or E2E (it never finished) is outside any bound on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmplan.scenario.models import SloSpec


def within_slo(slos: Sequence[SloSpec], group: np.ndarray, ok: np.ndarray, *,
               ttft_ms: np.ndarray, tpot_ms: np.ndarray, e2e_ms: np.ndarray,
               ttft_visible_ms: np.ndarray | None = None) -> np.ndarray:
    """Per request: finished and inside every bound of its SLO, `slos[group[i]]`.

    Arrays are aligned per request; missing latencies are NaN. `ttft_visible_ms`: to the
    answer's first token after hidden reasoning, the TTFT where a request had none (NaN:
    no answer came; None for all: nothing reasoned, the TTFT).
    """
    met = ok.astype(bool, copy=True)
    visible = ttft_ms if ttft_visible_ms is None else ttft_visible_ms
    for i, slo in enumerate(slos):
        mine = group == i
        for bound_ms, values, absent_passes in ((slo.ttft_ms, ttft_ms, False),
                                                (slo.tpot_ms, tpot_ms, True),
                                                (slo.e2e_ms, e2e_ms, False),
                                                (slo.ttft_visible_ms, visible, False)):
            if bound_ms is None:
                continue
            within = np.isnan(values) if absent_passes else np.zeros(len(values), bool)
            with np.errstate(invalid="ignore"):
                within |= values <= bound_ms
            met &= ~mine | within
    return met
