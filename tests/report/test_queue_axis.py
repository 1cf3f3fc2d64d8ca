"""The over-time chart's queue axis stays readable when one candidate's queue dwarfs the
others' (a saturated candidate next to ones that keep up)."""

from __future__ import annotations

from helpers import ExampleResult

from llmplan.report.axes import QUEUE_LOG_SPREAD, queue_axis_is_log
from llmplan.report.serving_charts import over_time
from llmplan.results.decision import Result


def test_the_axis_turns_logarithmic_only_past_the_spread() -> None:
    assert not queue_axis_is_log([[0.0, 1.0, 3.0], [0.0, 2.0, 30.0]])     # 10x: linear
    assert queue_axis_is_log([[0.0, 1.0, 3.0], [0.0, 2.0, 3.0 * QUEUE_LOG_SPREAD + 1]])
    # candidates that never queue do not count: their line lies on zero either way
    assert not queue_axis_is_log([[0.0, 0.0], [0.0, 500.0]])
    assert not queue_axis_is_log([[4.0]])


def _with_queues(result: Result, queues: list[list[float]]) -> Result:
    """The result with its GPU candidates' per-minute queue depths replaced, in order (the
    ones past the list never queue)."""
    deployments = dict(result.deployments)
    local = [name for name, dep in deployments.items() if dep.local is not None]
    assert len(local) >= 2, "the example needs two GPU candidates"
    for name, queue in zip(local, queues + [[0.0]] * len(local), strict=False):
        dep = deployments[name]
        assert dep.local is not None
        minutes = len(dep.local.timeseries.queue_depth_mean)
        series = dep.local.timeseries.model_copy(
            update={"queue_depth_mean": (queue * minutes)[:minutes]})
        deployments[name] = dep.model_copy(
            update={"local": dep.local.model_copy(update={"timeseries": series})})
    return result.model_copy(update={"deployments": deployments})


def test_a_saturated_candidate_does_not_flatten_the_others(
        example_result: ExampleResult) -> None:
    result = example_result("support-assistant")
    fig = over_time(_with_queues(result, [[0.0, 2.0], [900.0, 1500.0]]))
    assert fig.layout.yaxis2.type == "log"
    queue_lines = [t for t in fig.data if t.name.endswith(" queue")]
    # a minute with nobody waiting is a gap on the log axis, every waiting minute is drawn
    assert None in queue_lines[0].y and 2.0 in queue_lines[0].y
    assert min(y for y in queue_lines[1].y if y is not None) == 900.0
    # queues of one order stay on the linear axis that starts at zero
    fig = over_time(_with_queues(result, [[0.0, 2.0], [3.0, 5.0]]))
    assert fig.layout.yaxis2.type != "log" and fig.layout.yaxis2.rangemode == "tozero"
    assert 0.0 in next(t for t in fig.data if t.name.endswith(" queue")).y


def test_the_right_hand_axes_place_their_own_ticks(example_result: ExampleResult) -> None:
    """plotly.js 3 aligns an overlaying axis's ticks with the grid of the axis it overlays
    unless told otherwise: a log queue axis read "1.113455µ ... 798.3911". The log axis
    gets 1-2-5 ticks labelled as counts over the range it shows, from a hundredth of a
    waiting request up (a minute's 1e-5 no longer stretches it); the arrivals axis its own."""
    result = example_result("support-assistant")
    fig = over_time(_with_queues(result, [[1e-5, 0.3, 2.0], [900.0, 1500.0]]))
    queue, arrivals = fig.layout.yaxis2, fig.layout.yaxis3
    assert queue.type == "log" and queue.tickmode == "array"
    ticks = list(queue.tickvals)
    assert ticks[0] == 0.01 and ticks[-1] == 10_000
    assert list(queue.ticktext)[:3] == ["0.01", "0.1", "1"] and "1,000" in queue.ticktext
    assert list(queue.range) == [-2.0, 4.0]
    assert arrivals.tickmode == "auto"
    fig = over_time(_with_queues(result, [[0.0, 2.0], [3.0, 5.0]]))
    assert fig.layout.yaxis2.tickmode == "auto"


def test_a_break_even_line_is_dotted_past_what_its_fleet_serves(
        example_result: ExampleResult) -> None:
    """A feasible fleet's cost line is solid up to the volume it serves within the SLO
    (planning's, from the break-even rows) and dotted past it; an infeasible one dotted."""
    from llmplan.report.cost_charts import break_even_chart

    result = example_result("support-assistant", True)
    fig = break_even_chart(result)
    row = next(r for r in result.break_even if r.local == "gpu-fleet")
    most = row.local_slo_capacity_requests_per_month
    assert most is not None
    lines = [t for t in fig.data if t.legendgroup == "gpu-fleet"]
    solid = next(t for t in lines if t.line.dash == "solid")
    assert max(solid.x) <= most
    dotted = [t for t in lines if t.line.dash == "dot"]
    assert not dotted or min(dotted[0].x) >= max(solid.x)
    # gpu-small misses the SLO at this volume only: solid up to what it serves within it
    # (it wins at half the volume), dotted past it
    small = result.deployments["gpu-small"]
    assert not small.feasible and all(w.startswith("misses the SLO")
                                      for w in small.infeasible_because)
    serves = next(r for r in result.break_even if r.local == "gpu-small")
    serves_most = serves.local_slo_capacity_requests_per_month
    assert serves_most is not None
    small_lines = [t for t in fig.data if t.legendgroup == "gpu-small"]
    small_solid = [t for t in small_lines if t.line.dash == "solid"]
    assert small_solid and 0 < max(small_solid[0].x) <= serves_most
    # an infeasible candidate for a rule, not a volume, is dotted at every volume
    ruled = result.deployments["gpu-small"].model_copy(update={
        "infeasible_because": ["must work offline, and it depends on a cloud API"]})
    ruled_result = result.model_copy(update={"deployments": {
        **result.deployments, "gpu-small": ruled}})
    infeasible = [t for t in break_even_chart(ruled_result).data
                  if t.legendgroup == "gpu-small"]
    assert infeasible and all(t.line.dash == "dot" for t in infeasible)
    # ... and so is one that misses the SLO at every load planning tried: its full batches
    # are no volume it serves within the SLO
    assert result.planning is not None
    never = result.model_copy(update={
        "break_even": [r.model_copy(update={"local_slo_capacity_requests_per_month": None})
                       for r in result.break_even],
        "planning": result.planning.model_copy(update={"deployments": {
            **result.planning.deployments,
            "gpu-small": result.planning.deployments["gpu-small"].model_copy(
                update={"max_sustainable_requests_per_s": None})}})})
    hopeless = [t for t in break_even_chart(never).data if t.legendgroup == "gpu-small"]
    assert hopeless and all(t.line.dash == "dot" for t in hopeless)
    # "you are here" sits inside the plot, under the subtitle, on the line's roomier side
    [here] = fig.layout.annotations
    assert here.yanchor == "top" and here.xanchor in ("left", "right")


def test_a_days_arrivals_are_a_shaded_step_line_not_bars_too_thin_to_see(
        example_result: ExampleResult) -> None:
    """A 24-hour run's 1,440 one-minute bars are each under a pixel wide and vanished
    behind the lines: past STEP_AREA_MINUTES they are drawn as a filled step outline, on
    the same axis; an hour's 60 stay bars."""
    from llmplan.report.serving_charts import STEP_AREA_MINUTES

    day = example_result("retail-assistant")
    minutes = len(next(iter(day.deployments.values())).timeseries.minute)
    assert minutes > STEP_AREA_MINUTES
    [arrivals] = [t for t in over_time(day).data if t.name == "arrivals/s"]
    assert arrivals.type == "scatter" and arrivals.fill == "tozeroy"
    assert arrivals.line.shape == "hv" and arrivals.yaxis == "y3"
    hour = example_result("support-assistant")
    [bars] = [t for t in over_time(hour).data if t.name == "arrivals/s"]
    assert bars.type == "bar"
