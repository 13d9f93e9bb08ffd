"""The Django app bench/tasks.py runs: one Django task and one @handler doing the same."""
