"""Evaluation: datasets, metrics, the runner, reports and sweeps."""
