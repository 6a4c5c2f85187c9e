"""Benchmarks: octostore against MLflow on the same stores (see docs/benchmarks.md).

Run ``python -m bench --help``.  Nothing here is a timed test: the harness
prints figures and ratios; CI runs only a tiny size to keep it working.
"""
