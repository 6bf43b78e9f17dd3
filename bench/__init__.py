"""Benchmarks that print figures as JSON (run as modules: python -m bench.line)."""
