"""The traffic's long-run request rate: what a month of it holds, whichever stretch of it
is simulated (a diurnal day's busy hours, a part of a trace).

Monthly volume, and so every monthly cost, comes from this rate; capacity and the SLO come
from the simulated stretch.
"""

from __future__ import annotations

from llmplan.traffic.arrivals import LongRunRate, TraceTraffic, TrafficSpec
from llmplan.traffic.stream import RequestStream


def long_run_requests(traffic: TrafficSpec, stream: RequestStream, duration_s: float,
                      per_session: float | None = None) -> LongRunRate:
    """Requests per second over the long run: the traffic's new requests (its long-run
    rate) times the requests each brings: `per_session`, as the tasks' sessions average
    them (synthetic traffic), else as in `stream`, the `duration_s` simulated (a trace's
    conversations; a window cuts short the ones it ends in, so this undercounts them)."""
    rate = traffic.long_run_rate(duration_s)
    if stream.session is None or stream.turn is None:
        return rate
    expected = None if isinstance(traffic, TraceTraffic) else per_session
    if expected is not None:
        return LongRunRate(rate.requests_per_s * expected,
                           f"{rate.basis}, x {expected:.3g} requests each (conversations' "
                           f"turns, as the tasks' sessions average them)")
    new = int(((stream.session < 0) | (stream.turn == 0)).sum())
    if not new or new == len(stream):
        return rate
    per_new = len(stream) / new
    return LongRunRate(rate.requests_per_s * per_new,
                       f"{rate.basis}, x {per_new:.3g} requests each (conversations' turns)")
