"""Scale and speed benchmarks; run with ``make bench`` or one script at a time."""
