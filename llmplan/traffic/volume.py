"""The traffic's long-run request rate: what a month of it holds, whichever stretch of it
is simulated (a diurnal day's busy hours, a part of a trace).

Monthly volume, and so every monthly cost, comes from this rate; capacity and the SLO come
from the simulated stretch.
"""

from __future__ import annotations

from llmplan.traffic.arrivals import LongRunRate, TrafficSpec
from llmplan.traffic.stream import RequestStream


def long_run_requests(traffic: TrafficSpec, stream: RequestStream,
                      duration_s: float) -> LongRunRate:
    """Requests per second over the long run: the traffic's new requests (its long-run
    rate) times the requests each brings in `stream`, the `duration_s` simulated (a
    conversation's later turns)."""
    rate = traffic.long_run_rate(duration_s)
    if stream.session is None or stream.turn is None:
        return rate
    new = int(((stream.session < 0) | (stream.turn == 0)).sum())
    if not new or new == len(stream):
        return rate
    per_new = len(stream) / new
    return LongRunRate(rate.requests_per_s * per_new,
                       f"{rate.basis}, x {per_new:.3g} requests each (conversations' turns)")
