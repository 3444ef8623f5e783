"""Daemon runtime: what every Foreman daemon shares (logs, signals, sleeps, backoff, health and metrics)."""
