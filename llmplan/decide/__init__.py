"""From simulated figures to a decision: costs.py (every cost item, monthly), decision.py
(feasibility, ranking by cost per useful result, decision table, checklist, break-even)."""
