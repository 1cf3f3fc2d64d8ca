"""`llmplan catalog` lists GPUs, models and cloud models in 100 columns; `--sources` prints
every entry's sources."""

from __future__ import annotations

import datetime

from rich.console import Console
from rich.measure import Measurement
from typer.testing import CliRunner

from llmplan.catalog import builtin_catalog
from llmplan.cli import app
from llmplan.render import catalog_tables

WIDTH = 100
MEASURED_TITLE = "Cloud models: measured latency"


def _render(*, sources: bool = False, today: datetime.date | None = None) -> str:
    console = Console(width=400, record=True, color_system=None)
    for table in catalog_tables(builtin_catalog(), sources=sources, today=today):
        console.print(table, width=WIDTH)
    return console.export_text()


def test_overview_tables_fit_100_columns_without_wrapping_a_row() -> None:
    # rendered 400 wide, a table narrower than 100 keeps its natural width: nothing wraps
    # (its caption, a paragraph under it, takes the terminal's width)
    console = Console(width=400, record=True, color_system=None)
    for table in catalog_tables(builtin_catalog(), today=datetime.date(2026, 12, 1)):
        assert Measurement.get(console, console.options, table).maximum <= WIDTH
        console.print(table)
    text = console.export_text()
    catalog = builtin_catalog()
    lines = text.splitlines()
    for key in [*catalog.gpus, *catalog.models, *catalog.cloud_models]:
        assert sum(line.startswith(key + " ") for line in lines) == 1, key


def test_stale_prices_are_starred_against_today() -> None:
    text = _render(today=datetime.date(2026, 12, 1))
    assert "2025-06-01*" in text                # MI300X: 548 days old
    assert "2026-11-20*" not in text and "2026-11-20" in text
    assert "* prices older than 180 days on 2026-12-01" in text


def test_sources_print_every_field_of_every_entry() -> None:
    text = _render(sources=True)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= WIDTH
    catalog = builtin_catalog()
    for section in ("gpus", "models", "cloud_models"):
        for key, entry in getattr(catalog, section).items():
            assert f"{section}/{key}" in text
            for name in entry.sources:
                assert name in text
    flat = " ".join(text.split())
    assert "85045477376 bytes / 2^20" in flat            # H100 memory, word for word
    assert "num_nextn_predict_layers" in flat             # DeepSeek MTP source


def test_cli_catalog_lists_cloud_models_and_sources() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["catalog"], env={"COLUMNS": str(WIDTH)})
    assert listing.exit_code == 0, listing.output
    for title in ("GPUs", "Models", "Cloud models: openai", "Cloud models: anthropic",
                  "Cloud models: google", "Cloud models: bedrock", "Cloud models: azure_openai"):
        assert title in listing.output
    assert "gpt-oss-120b" in listing.output and "claude-opus-5.5" in listing.output
    assert max(len(line) for line in listing.output.splitlines()) <= WIDTH
    sources = runner.invoke(app, ["catalog", "--sources"], env={"COLUMNS": str(WIDTH)})
    assert sources.exit_code == 0, sources.output
    assert "cloud_models/gemini-4-argon" in sources.output
    assert "gpus/MI300X" in sources.output
    assert max(len(line) for line in sources.output.splitlines()) <= WIDTH


def test_a_60_column_terminal_drops_columns_it_names_and_never_cuts_an_id() -> None:
    """Below 80 columns the tables show fewer columns, whole: every id on one line of its
    own, and a caption naming the columns left out (RTX-PRO-6000 had been cut in two)."""
    console = Console(width=400, record=True, color_system=None)
    for table in catalog_tables(builtin_catalog(), today=datetime.date(2026, 12, 1)):
        console.print(table, width=60)
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 60
    lines = text.splitlines()
    catalog = builtin_catalog()
    for key in [*catalog.gpus, *catalog.models, *catalog.cloud_models]:
        assert sum(line.startswith(key + " ") for line in lines) == 1, key
    assert "not shown at this width:" in text


def test_measured_latency_is_listed_with_its_source_and_date_and_the_rest_said_default() -> None:
    catalog = builtin_catalog()
    text = _render(today=datetime.date(2026, 12, 1)).split(MEASURED_TITLE)[1]
    lines = text.splitlines()
    measured = {key: c.latency for key, c in catalog.cloud_models.items()
                if c.latency is not None}
    assert {"gpt-6-luna", "gpt-6-sol", "claude-sonnet-4.6"} <= set(measured)
    rows = {line.split()[1]: line for line in lines if len(line.split()) > 1}
    for key, latency in measured.items():
        row = rows[key]
        assert row.startswith(catalog.cloud_models[key].provider + " ")
        assert latency.as_of.isoformat() in row and latency.measured_by in row, row
    assert "130.6" in rows["gpt-6-luna"] and "740" in rows["gpt-6-luna"]
    assert "llama-3.3-70b-bedrock" not in text      # no measurement found: not listed
    assert f"the {len(catalog.cloud_models) - len(measured)} cloud models not listed" in \
        " ".join(text.split())


def test_sources_quote_each_measured_figure_and_say_where_none_was_found() -> None:
    text = _render(sources=True)
    luna = " ".join(text.split("cloud_models/gpt-6-luna")[1].split("cloud_models/")[0].split())
    assert "latency.output_tokens_per_s" in luna and "130.6 t/s" in luna
    assert "latency.ttft_ms" in luna and "0.74s" in luna
    assert "latency.as_of" in luna and "measured by Artificial Analysis" in luna
    bedrock = text.split("cloud_models/llama-3.3-70b-bedrock")[1].split("cloud_models/")[0]
    assert "no public measurement found" in " ".join(bedrock.split())
