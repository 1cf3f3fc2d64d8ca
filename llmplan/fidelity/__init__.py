"""The fidelity loop: fit the simulator to a real server, then check its predictions.

timeline.py rebuilds batch steps from load-test records; fit.py fits the step-time model
robustly and judges it (identifiability, quality gate); server.py reads what the server
said about itself and refuses to mix settings; calibrate.py puts them together (and
vllm_metrics.py does the same from a vLLM server's scraped /metrics, read by promtext.py);
imports.py turns other tools' exports into records; validate.py replays measured requests
through the calibrated simulator.
"""
