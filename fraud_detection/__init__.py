"""Fraud detection library: schema, data, training and the serving model contract.

Pure, typed logic with no Kubeflow or KServe imports, so tests and notebooks can call it directly.
Importing this package has no side effects.
"""

__version__ = "0.1.0"
