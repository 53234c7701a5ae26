"""The loop after deploy, as pure library code: the prediction-log record, late labels and their join, live
performance, skew and drift of served traffic, and the shadow comparison. No HTTP server and no Kafka client:
the processes in the top-level ``monitor`` package run them."""

PSI_THRESHOLD = 0.2
"""The PSI above which a column's skew or drift alerts, unless told otherwise (:mod:`.shift`). Here, not in
``shift``, so the loop's settings read it without importing NumPy and pandas (``fraud --help`` stays quick)."""
