"""Benchmarks: `python -m bench.ingest` (webhook acknowledgement) and `python -m bench.pipeline` (end to end).

See docs/BENCHMARKS.md for the commands, the method and the figures measured.
"""
