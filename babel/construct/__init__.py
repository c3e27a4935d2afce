"""Stage 1, experts: partitions of each FFN layer, expert scores, selection rules, routing."""
