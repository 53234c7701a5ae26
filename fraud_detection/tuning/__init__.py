"""Hyper-parameter tuning of the bake-off's families on the validation window (docs/tuning.md).

:mod:`.space` declares a search space as data; :mod:`.study` searches it locally with Optuna; :mod:`.trial` is
the command one Katib trial runs (the space rendered by :mod:`ops.katib`).
"""
