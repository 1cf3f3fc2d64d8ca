"""The report's terms, explained at the end of the page."""

from __future__ import annotations

import html

#: the report's terms, as the simulator and the checklist use them
GLOSSARY = (
    ("SLO", "service-level objective: the latency bounds each request should meet (slo: in "
            "the scenario) and the share of requests that must meet them"),
    ("TTFT", "time to first token: from a request's arrival to its first streamed token "
             "(queueing and prefill included); with hidden reasoning, a reasoning token"),
    ("TPOT", "time per output token after the first: the gap between streamed tokens"),
    ("E2E", "end to end: from arrival to the last token of the answer"),
    ("p50, p95", "the median, and the value 95% of requests stay within"),
    ("goodput", "the share of requests answered within every SLO bound of their task; a "
                "candidate meets the SLO when it reaches slo.min_goodput_fraction"),
    ("useful result", "a request answered within the SLO, times its task's quality (the "
                      "share of right answers): what the cost per useful result divides by"),
    ("busiest stretch", "the run of consecutive requests that arrives in the shortest time: "
                        "planning's searches speed it up to find the highest rate a "
                        "candidate sustains within the SLO"),
    ("full batches", "a replica running its fullest batch every step (max_num_seqs, or "
                     "what the KV cache holds): what it finishes per second as a mean over a "
                     "long run, which the SLO usually binds first; the rate planning finds "
                     "within the SLO is at the busiest stretch's pace, and a stretch a "
                     "little above the mean can exceed it while the queue absorbs it"),
    ("KV cache tokens", "tokens of context a replica's KV cache holds, as vLLM logs it at "
                        "start-up ('GPU KV cache size')"),
    ("MBU", "model bandwidth utilisation: the bytes the steps read (weights, and the KV "
            "cache of decoding sequences) over the GPUs' peak memory bandwidth, over the run"),
    ("tp, pp, ep", "tensor parallel (each layer split over tp GPUs), pipeline parallel "
                   "(the layers split into pp stages, a stage a GPU or a server), expert "
                   "parallel (a mixture of experts' experts spread over the GPUs)"),
    ("bought", "GPUs an owned fleet buys: SXM/OAM GPUs come on 4- or 8-GPU baseboards, so a "
               "fleet of 2 buys a board of 4; PCIe cards are sold one by one"),
    ("429, throttled", "HTTP 429: the provider refused a call over the account's rate limits "
                       "(requests or tokens a minute); the client retries after a wait"),
    ("spill-over", "a hybrid sends a request to the API when its own fleet's queue is too "
                   "long (restricted tasks never go)"),
    ("PUE", "power usage effectiveness: a data centre's total power over its IT power; "
            "electricity is billed at the servers' draw times PUE"),
    ("right-sized", "the answer again with each fixed fleet at the fewest replicas meeting "
                    "the SLO (as simulated on the whole run)"),
    ("checklist status", "given (the scenario says it), assumed (llmplan's default, or "
                         "no figure), simulated or measured (from the runs), provisioned "
                         "(what the stack builds), constraint (a rule of the scenario), "
                         "not applicable"),
)


def glossary_html() -> str:
    return ("<h2 id='terms'>Terms</h2><dl>" + "".join(
        f"<dt><b>{html.escape(term)}</b></dt><dd>{html.escape(text)}</dd>"
        for term, text in GLOSSARY) + "</dl>")
