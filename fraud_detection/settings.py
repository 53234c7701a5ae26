"""Process settings for the command line: one object, built at the entry point, never at import.

Every field can be set from the environment with the ``FRAUD_`` prefix (``FRAUD_HOME=/data/fraud``).
Pipeline knobs are not settings: they are pipeline parameters (``fraud run --help``).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where local runs keep their state, and which MLflow server they talk to."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore")

    home: Path = Path(".fraud")
    """Local state: MLflow database and artifacts, KFP local pipeline root, exported champion."""
    mlflow_tracking_uri: str = ""
    """Empty: use ``MLFLOW_TRACKING_URI`` if set, else a SQLite file under ``home``."""
    log_level: str = "INFO"

    def tracking_uri(self) -> str:
        """The MLflow tracking URI this process should use."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{(self.home / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def pipeline_root(self) -> Path:
        """Where ``kfp.local`` writes every task's artifacts."""
        return (self.home / "pipeline_root").resolve()

    @property
    def serving_dir(self) -> Path:
        """The local champion model directory that ``fraud serve`` reads."""
        return (self.home / "serving" / "champion").resolve()
