"""Load tests of real LLM endpoints with Locust, replaying a scenario's traffic.

Nothing here imports locust except `locustfile.py`, which only ever runs inside the Locust
subprocess started by `runner.py` (gevent's monkey-patching would break boto3 and Pulumi in
any other process).

Read in this order: targets.py (where to send), workload.py (a scenario or a quick fixed
workload, and the server's context limits), server_props.py (what llama.cpp says about
itself), plan.py (what to send, when, salted per run), clients.py and sse.py (one streamed
request, timed token by token), records.py (one JSONL line per request), checks.py (was
the answer right), summary.py (what the run means), runner.py (Locust headless, master and
workers, stop file and grace period, dead targets), scrape.py (vLLM /metrics during the
run), levels.py (rate sweeps), repeats.py (confidence intervals), exports.py (CSV,
Prometheus text), report.py (HTML), llamacpp_server.py (the bundled real server).
"""
