"""The KServe predictor that serves the champion fraud model (see docs/serving.md)."""
