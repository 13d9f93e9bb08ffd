"""The soak test's handlers (tests/test_soak.py): one of every shape a handler can take."""
