"""The three model audits as computations: each takes arrays or frames and returns a typed result.

``poison`` (label-flip attacks and the trusted-sanitiser defence), ``fairness`` (Fairlearn group metrics and
SHAP values) and ``drift`` (Evidently). Nothing here plots, writes HTML or talks to MLflow: rendering is in
:mod:`fraud_detection.reports`, logging in :mod:`fraud_detection.tracking`, and the pipeline steps that chain
the three are in :mod:`fraud_detection.steps.audits`.
"""
