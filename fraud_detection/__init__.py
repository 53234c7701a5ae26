"""Fraud detection library: schema, data, training and the serving model contract.

Pure, typed logic with no Kubeflow or KServe imports, so tests and notebooks can call it directly.
Importing this package has no side effects.

Words for making a model, one per layer:

* **train** (``components/train.py``): the pipeline's tasks ``train_family`` and ``select_model``, and MLflow's
  run ``train``. The library does not use the word for a module.
* **bake-off** (:mod:`fraud_detection.steps.bakeoff`): the steps behind those tasks: fit one family and write its
  candidate directory; then blend, select the winner on validation AUPRC, and log it.
* **fit** (:mod:`fraud_detection.families.fit`): make one family's candidate (model, threshold, validation
  scores), one module per family; the family's model itself (files, scoring, explanations) is in
  :mod:`fraud_detection.families`.
* **boost** (:mod:`fraud_detection.boosting`, :mod:`fraud_detection.engines.dask_boosting`): train one XGBoost
  booster, stopped early and calibrated, in one process or on a Dask cluster.
* **metrics** (:mod:`fraud_detection.metrics`): what a set of scores is worth, and the keys it is recorded under.
"""

__version__ = "0.1.0"
