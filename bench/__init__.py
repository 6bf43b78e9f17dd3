"""Benchmarks that print figures as JSON: ``python -m bench`` (see bench/README.md)."""
