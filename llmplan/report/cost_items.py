"""Cost items as a reader names them, and each item's colour and fill pattern, the same in
every report."""

from __future__ import annotations

#: Cost items as a reader names them (result.json keeps the item keys).
ITEM_LABELS = {
    "hardware": "GPUs and servers (amortised)", "gpu_rental": "GPU rental",
    "electricity": "electricity", "cooling": "cooling", "maintenance": "maintenance",
    "rack_colocation": "rack space", "serving_software": "serving software",
    "engineering": "engineering hours", "on_call": "on-call hours",
    "hardware_incidents": "hardware incident hours", "monitoring": "monitoring",
    "replacement_cycle": "replacements", "input_tokens": "API input tokens",
    "output_tokens": "API output tokens", "abandoned_attempts": "API attempts timed out",
    "long_context": "API long-context prices",
    "request_fees": "API request fees",
    "tool_calls": "tool calls", "storage_retrieval": "storage and retrieval",
    "network_egress": "network egress", "observability": "API observability",
    "vendor_review": "vendor review", "rate_limit_planning": "rate-limit planning",
}


def item_label(item: str) -> str:
    """`cloud_input_tokens` -> "API input tokens" (a hybrid's cloud part)."""
    return ITEM_LABELS.get(item.removeprefix("cloud_"), item.replace("_", " "))


#: A colour-blind-safe qualitative palette (Okabe and Ito's, with grey for black): every
#: two of its colours stay apart for the common colour-vision deficiencies.
SAFE_COLOURS = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
                "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
                "purple": "#CC79A7", "grey": "#999999"}
#: Each cost item's colour and fill pattern ("" solid, "/" hatched, "." dotted), the same in
#: every report: a candidate pays up to a dozen items and the palette has eight colours, so
#: the smaller items repeat a colour under a pattern; in ITEM_LABELS' order, which is the
#: order the segments stack in, no two items in a row share a colour.
ITEM_STYLES: dict[str, tuple[str, str]] = {
    "GPUs and servers (amortised)": ("blue", ""), "GPU rental": ("sky", "/"),
    "electricity": ("yellow", ""), "cooling": ("blue", "/"),
    "maintenance": ("vermillion", ""), "rack space": ("grey", ""),
    "serving software": ("orange", "/"), "engineering hours": ("green", ""),
    "on-call hours": ("purple", ""), "hardware incident hours": ("vermillion", "/"),
    "monitoring": ("green", "/"), "replacements": ("yellow", "/"),
    "API input tokens": ("orange", ""), "API output tokens": ("sky", ""),
    "API attempts timed out": ("purple", "/"), "API long-context prices": ("blue", "."),
    "API request fees": ("green", "."), "tool calls": ("vermillion", "."),
    "storage and retrieval": ("yellow", "."), "network egress": ("grey", "/"),
    "API observability": ("orange", "."), "vendor review": ("purple", "."),
    "rate-limit planning": ("sky", "."),
}
#: every cost item's label, in a fixed order: the order its segment stacks in
ITEM_ORDER = tuple(dict.fromkeys(ITEM_LABELS.values()))


def item_style(label: str) -> tuple[str, str]:
    """A cost item's colour (hex) and fill pattern, the same in every report (one not in
    ITEM_LABELS: cross-hatched, its colour by its letters, stably)."""
    name, pattern = ITEM_STYLES.get(label) or (
        list(SAFE_COLOURS)[sum(map(ord, label)) % len(SAFE_COLOURS)], "x")
    return SAFE_COLOURS[name], pattern
