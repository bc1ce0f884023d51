"""Design-space sweeps (`hwgen sweep`): a grid of trials (model, bits, board, ceiling, frame
rate, event-driven layers) run to a stage (plan, sim or build) on Ray or local processes,
cached by content hash in OUT/results.jsonl, summarised in OUT/report.md with Pareto plots.
"""
