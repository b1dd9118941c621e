"""Benchmarks: scripts that start the service and print figures (not tests)."""
