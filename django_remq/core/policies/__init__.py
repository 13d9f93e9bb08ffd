"""Pure policies and their atomic steps: retry (``retry``), dead letters (``dlq``),
``debounce``, ``cron`` repeat, and how a failed run is recorded (``failures``)."""
