"""One implementation per idea: the rule each shared definition promises, on paper cases."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from helpers import ROOT

from llmplan.errors import InputError, did_you_mean
from llmplan.jsonl import read_jsonl
from llmplan.scenario.goodput import within_slo
from llmplan.scenario.models import Economics, RouterName, SloSpec
from llmplan.sim.router import ROUTERS
from llmplan.stats import mean, percentile, percentiles


def test_percentiles_interpolate_linearly_drop_nan_and_say_none_when_empty() -> None:
    values = [50.0, 10.0, 40.0, 20.0, 30.0]
    # sorted 10..50: p90 sits at index 0.9 * 4 = 3.6, between 40 and 50
    assert percentiles(values, (50, 90)) == {50: 30.0, 90: 46.0}
    assert percentile([1.0, math.nan, 3.0, None], 50) == 2.0
    assert percentiles([], (50, 99)) == {50: None, 99: None}
    assert percentile([math.nan], 95) is None and mean([]) is None
    assert mean(np.array([1.0, np.nan, 5.0])) == 3.0


def test_small_arrays_give_numpys_percentiles_to_the_last_bit() -> None:
    # up to stats.SMALL values the percentiles come from a sort in Python: the same floats
    # np.percentile gives (results are compared byte for byte), ties, zeros and signs too
    rng = np.random.default_rng(7)
    arrays = [rng.lognormal(0, 2, 257), rng.integers(0, 4, 101) * 0.1, rng.normal(0, 1e6, 64),
              np.round(rng.exponential(1, 1999), 3), np.array([-0.0, 0.0, 5.0]), np.ones(1)]
    qs = (*range(0, 101), 12.5, 33.3, 99.9)
    for values in arrays:
        assert percentiles(values, qs) == dict(zip(qs, np.percentile(values, qs).tolist(),
                                                   strict=True))
    with pytest.raises(ValueError, match="range"):
        percentiles([1.0, 2.0], (101,))


def test_goodput_counts_finished_requests_inside_every_bound_of_their_slo() -> None:
    slos = [SloSpec(ttft_ms=100, tpot_ms=10), SloSpec()]
    group = np.array([0, 0, 0, 0, 0, 1, 1])
    ok = np.array([True, True, True, True, False, True, False])
    ttft = np.array([90.0, 90.0, 120.0, np.nan, 50.0, 999.0, 1.0])
    tpot = np.array([9.0, np.nan, 5.0, 5.0, 5.0, 999.0, 1.0])
    e2e = np.array([500.0, 90.0, 600.0, 700.0, 60.0, 9999.0, 2.0])
    met = within_slo(slos, group, ok, ttft_ms=ttft, tpot_ms=tpot, e2e_ms=e2e)
    # inside; one token (no TPOT) cannot break a TPOT bound; TTFT over; no first token;
    # did not finish; no bounds at all; no bounds but did not finish
    assert met.tolist() == [True, True, False, False, False, True, False]
    # a bound exactly met counts as met
    exact = within_slo([SloSpec(e2e_ms=100)], np.array([0]), np.array([True]),
                       ttft_ms=np.array([1.0]), tpot_ms=np.array([np.nan]),
                       e2e_ms=np.array([100.0]))
    assert exact.tolist() == [True]


def test_jsonl_skips_only_a_torn_last_line(tmp_path: Path) -> None:
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b"')   # killed mid-write
    assert [row for _, row in read_jsonl(torn)] == [{"a": 1}, {"a": 2}]
    broken_inside = tmp_path / "inside.jsonl"
    broken_inside.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(InputError, match=r"inside.jsonl:2"):
        read_jsonl(broken_inside)
    finished_but_bad = tmp_path / "bad-last.jsonl"
    finished_but_bad.write_text('{"a": 1}\nnot json\n')    # complete line: not a tear
    with pytest.raises(InputError, match=r"bad-last.jsonl:2"):
        read_jsonl(finished_but_bad)
    not_object = tmp_path / "list.jsonl"
    not_object.write_text("[1, 2]\n")
    with pytest.raises(InputError, match="expected a JSON object"):
        read_jsonl(not_object)


def test_one_month_factor_and_one_router_list() -> None:
    assert Economics().month_factor(3600.0) == pytest.approx(730.0)
    assert Economics(hours_per_month=720).month_factor(86400.0) == pytest.approx(30.0)
    assert set(ROUTERS) == set(get_args(RouterName))


def test_the_pulumi_program_imports_only_the_provisioning_module() -> None:
    tree = ast.parse((ROOT / "infra" / "__main__.py").read_text())
    ours = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and node.module and node.module.startswith("llmplan")]
    assert ours and all(m.startswith("llmplan.provision") for m in ours)


def test_one_limit_on_the_requests_a_run_holds() -> None:
    # a scenario's traffic and an imported usage trace are held to one number: a module-level
    # name for a request limit is assigned once in the package (the rest import it)
    defined = [(path.relative_to(ROOT).as_posix(), target.id)
               for path in sorted((ROOT / "llmplan").rglob("*.py"))
               for node in ast.parse(path.read_text()).body
               if isinstance(node, ast.Assign | ast.AnnAssign)
               for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
               if isinstance(target, ast.Name) and target.id.startswith("MAX_")
               and target.id.endswith("_REQUESTS")]
    assert defined == [("llmplan/traffic/stream.py", "MAX_SIMULATED_REQUESTS")]


def test_did_you_mean_offers_names_that_begin_with_the_typo_first_then_the_alike() -> None:
    known = ["H100-SXM", "H100-PCIe", "H200", "L40S", "L4"]
    assert did_you_mean("H100", known) == " (did you mean 'H100-PCIe', 'H100-SXM' or 'H200'?)"
    assert did_you_mean("h100-smx", known) == " (did you mean 'H100-SXM'?)"   # any case
    assert did_you_mean("quux", known) == ""
    assert did_you_mean("x", [f"x{i}" for i in range(10)]).count("'") == 2 * 4   # at most 4


def test_a_visible_ttft_bound_fails_a_request_that_reasoned_and_never_answered() -> None:
    """The load test's records: an answer after reasoning is judged at its first visible
    token; one that reasoned and never answered (max_tokens reached while thinking) has no
    visible token, so it is outside the bound, not judged at its first reasoning token; a
    request that did not reason is judged at its TTFT."""
    from llmplan.loadtests.records import RequestRecord
    from llmplan.loadtests.summary import goodput_mask, summarise_records

    def record(i: int, **figures: float | int | None) -> RequestRecord:
        return RequestRecord(id=i, task="t", target="x", scheduled_ts=float(i),
                             send_ts=float(i), schedule_delay_ms=0.0, status=200,
                             ttft_ms=100.0, e2e_ms=30_000.0, output_tokens=50, **figures)

    rows = [record(0, reasoning_tokens=400, ttft_visible_ms=1_500.0),
            record(1, reasoning_tokens=4096, ttft_visible_ms=None),
            record(2, reasoning_tokens=400, ttft_visible_ms=29_000.0),
            record(3)]
    slo = {"t": SloSpec(ttft_visible_ms=2_000)}
    assert goodput_mask(rows, slo).tolist() == [True, False, False, True]
    summary = summarise_records(rows, planned=4, planned_span_s=4.0, slo_by_task=slo,
                                mode="open")
    assert summary.slo.bounded and summary.slo.goodput_fraction == 0.5
