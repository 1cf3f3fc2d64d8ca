"""From simulated figures to a decision: decision.py (`decide`) on pricing.py (each
candidate's cost per month, from costs.py's items), candidates.py (feasibility),
peak.py (a daily peak the run misses), recommendation.py (ranking by cost per useful
result), table.py (decision table, checklist) and break_even.py; planning.py (`plan`)
searches replicas and rates and tests the ranking's stability."""
