"""A break-even row in words: where the local side starts and stops costing less, per
request and per useful result, and which sides the decision excluded."""

from __future__ import annotations

from llmplan.report.html_text import fmt
from llmplan.results.decision import BreakEven, Result


def excluded_words(result: Result, row: BreakEven) -> str:
    """" (api excluded)": the sides of a break-even pair the decision excluded; ""
    when both may be chosen."""
    out = [n for n in (row.local, row.cloud) if not result.deployments[n].feasible]
    return f" ({' and '.join(out)} excluded)" if out else ""


def break_even_words(row: BreakEven) -> str:
    """The break-even volume, or which side is cheaper at every volume."""
    return _crossing_words(row, row.break_even_requests_per_month,
                           row.local_dearer_again_requests_per_month) \
        or f"none: {row.cheaper_at_every_volume()} is cheaper at every volume"


def _crossing_words(row: BreakEven, volume: float | None, again: float | None) -> str:
    """"1,234 (gpu costs less only up to 5,678)": where the local side starts costing
    less and where it stops (a break-even's, or per useful result's); "" for neither."""
    if volume:
        return fmt(volume) + (f" ({row.local} costs less only up to {fmt(again)})"
                               if again else "")
    if again:
        return f"{fmt(again)} ({row.local} costs less below it, {row.cloud} above)"
    return ""


def per_useful_words(row: BreakEven) -> str:
    """The break-even per useful result with the two useful shares that move it, and, as
    the terminal's line says, when that volume is past what the local fleet serves."""
    ul, uc = row.local_useful_share, row.cloud_useful_share
    if ul is None or uc is None:
        return "-"
    crossings = _crossing_words(row, row.break_even_useful_requests_per_month,
                                row.local_dearer_again_useful_requests_per_month)
    past = row.per_useful_past_capacity()
    return f"{crossings or 'none'} ({ul:.0%}, {uc:.0%})" + (f"; {past}" if past else "")
