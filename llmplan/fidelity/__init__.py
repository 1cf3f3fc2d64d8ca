"""The fidelity loop: fit the simulator to a real server, then check its predictions.

timeline.py rebuilds batch steps from load-test records; calibrate.py fits the step-time
model to them; validate.py replays measured requests through the calibrated simulator.
"""
