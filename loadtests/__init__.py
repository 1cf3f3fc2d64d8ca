"""Load tests of real LLM endpoints with Locust, replaying a scenario's traffic.

Nothing here imports locust except `locustfile.py`, which only ever runs inside the Locust
subprocess started by `runner.py` (gevent's monkey-patching would break boto3 and Pulumi in
any other process).

Read in this order: targets.py (where to send), plan.py (what to send, when), clients.py
(one streamed request, timed token by token), records.py (one JSONL line per request),
checks.py (was the answer right), summary.py (what the run means), runner.py (Locust
headless, master and workers, Ctrl-C and dead targets), report.py (HTML).
"""
