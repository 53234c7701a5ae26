"""Execution engines beyond one process: the Dask engine's load (:mod:`.dask_load`), booster training
(:mod:`.dask_boosting`) and local cluster (:mod:`.dask_cluster`).

The ``local`` engine is the rest of the library, unchanged. Creating a cluster on Kubernetes is not the
library's business (it is a leaf): the components do it with the Dask Kubernetes Operator and hand the
library a connected ``distributed.Client``.
"""
