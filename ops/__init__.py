"""Cluster operations: submitting runs to KFP or Vertex AI, InferenceService bodies, Cloud Logging queries.

These talk to (or build requests for) GKE and Google APIs; the library never imports them.
"""
