"""Pipeline steps as plain functions over local paths, one module per step.

Each KFP component in ``components/`` is a thin shim that calls one of these with its artifact paths, so the
whole pipeline logic runs and is tested without KFP.
"""
