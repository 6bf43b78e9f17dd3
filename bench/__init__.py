"""Benchmarks that print figures as JSON (run them with ``python -m bench.NAME``)."""
