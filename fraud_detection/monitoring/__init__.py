"""The loop after deploy, as pure library code: the prediction-log record, late labels and their join, live
performance, skew and drift of served traffic, and the shadow comparison. No HTTP server and no Kafka client:
the processes in the top-level ``monitor`` package run them."""
