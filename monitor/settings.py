"""The settings of the loop's two processes, one object per process, built by its entry point, never at import.

Every field can be set from the environment with the ``FRAUD_`` prefix (``FRAUD_BOOTSTRAP_SERVERS``,
``FRAUD_TOKEN_FILE``); each process's options are derived from its settings (:mod:`monitor.options`). Both bind
127.0.0.1 by default; the manifests set ``0.0.0.0`` where a pod is reached from outside.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraud_detection.config import GateKnobs
from fraud_detection.monitoring import PSI_THRESHOLD

if TYPE_CHECKING:
    from monitor.metrics import Windows


class CohortSettings(BaseSettings):
    """What the joiner and the controller must agree on: when a row is judged, and which rows are the cohort."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore", use_attribute_docstrings=True)

    maturity_hours: float = Field(default=24 * 30, gt=0)
    """Time after scoring until a row is judged (its label, or legitimate when none came)."""
    cohort_days: float = Field(default=7, gt=0)
    """Matured rows scored within this span before the maturity cutoff are the cohort."""
    resamples: int = Field(default=200, ge=10)
    """Bootstrap resamples of the shadow comparison."""

    @property
    def maturity(self) -> timedelta:
        """``maturity_hours`` as a span."""
        return timedelta(hours=self.maturity_hours)

    @property
    def cohort(self) -> timedelta:
        """``cohort_days`` as a span."""
        return timedelta(days=self.cohort_days)


class JoinerSettings(CohortSettings):
    """The label joiner: where the records and labels come from, the store, and ``/metrics``."""

    db: Path
    """The SQLite join store."""
    bootstrap_servers: str | None = None
    """Kafka brokers; none: serve the metrics of the store only (fed by ``import-labels``)."""
    records_topic: str = "fraud-predictions"
    """The prediction log's topic."""
    labels_topic: str = "fraud-labels"
    """The labels' topic."""
    group_id: str = "fraud-joiner"
    """Kafka consumer group."""
    metrics_host: str = "127.0.0.1"
    """Address of ``/metrics`` (a pod sets 0.0.0.0 to be scraped)."""
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    """Port of ``/metrics``."""
    serving_minutes: float = Field(default=60, gt=0)
    """The served window for skew (against the reference) and drift (against the window before)."""
    reference: Path | None = None
    """Override of the training reference: a ``shift.Reference`` JSON, or a Parquet or CSV sample (a column per
    feature and ``score``); wins over ``reference_uri``. Neither: no skew gauges."""
    reference_uri: str | None = None
    """The model whose recorded training reference is the skew baseline: ``models:/fraud-detector@champion``,
    ``runs:/<run id>`` (both read from MLflow at ``tracking_uri``) or a model directory (local or ``gs://``)."""
    tracking_uri: str | None = None
    """MLflow tracking server of a ``runs:/`` or ``models:/`` ``reference_uri``."""
    reference_refresh_minutes: float = Field(default=60, gt=0)
    """Time between two reads of ``reference_uri`` (a promoted champion brings its own reference)."""
    shift_threshold: float = Field(default=PSI_THRESHOLD, gt=0)
    """PSI above which a column alerts (exported as ``fraud_shift_threshold``)."""
    refresh_seconds: float = Field(default=15, gt=0)
    """Time between two computations of the metrics."""
    session_timeout_seconds: float = Field(default=45, ge=1)
    """The Kafka consumer's session timeout (librdkafka's default); the broker may hold a group's first join for
    about half of it."""

    def windows(self) -> Windows:
        """The spans a snapshot looks at."""
        from monitor.metrics import Windows

        return Windows(maturity=self.maturity, cohort=self.cohort, serving=timedelta(minutes=self.serving_minutes))


class ControllerSettings(CohortSettings):
    """The controller: who may call it, what each alert does, and where the champion, registry and store are."""

    token_file: Path
    """File holding the bearer token Alertmanager sends (a mounted Secret on the cluster)."""
    serving_root: str
    """Where the champion pointer and the exported versions are (local folder or ``gs://`` prefix)."""
    state: Path = Path(".fraud/monitor/controller.sqlite")
    """The retrain lease's SQLite file."""
    retrain_command: str = "fraud run"
    """The command that starts a retraining run (``fraud submit`` on a cluster)."""
    lease_hours: float = Field(default=6, gt=0)
    """No second run starts within this time of one."""
    host: str = "127.0.0.1"
    """Address to listen on (a pod sets 0.0.0.0)."""
    port: int = Field(default=9200, ge=0, le=65535)
    """Port to listen on."""
    retrain_alerts: str = "FraudFeatureSkew,FraudFeatureDrift,FraudScoreDrift,FraudLivePerformanceDecay"
    """Alert names (comma-separated) that start a retraining run."""
    rollback_alerts: str = "FraudNewestVersionDegraded"
    """Alert names that roll the champion back (the alert carries ``model_version``)."""
    promote_alerts: str = "FraudShadowChallengerWins"
    """Alert names that promote the registry's challenger (the alert carries both versions)."""
    tracking_uri: str | None = None
    """MLflow tracking server of the registry; none: promotion is refused."""
    model_name: str = "fraud-detector"
    """The registered model holding the ``champion`` and ``challenger`` aliases."""
    join_db: Path | None = None
    """The joiner's store, read for the paired live metrics of a promotion; none: promotion is refused."""
    gates: GateKnobs = Field(default_factory=GateKnobs)
    """The promotion gates' bounds, as JSON (``{"auprc_tolerance": 0.01}``); the pipeline's defaults otherwise."""

    def names(self, field: str) -> frozenset[str]:
        """The alert names of a comma-separated option."""
        return frozenset(name.strip() for name in str(getattr(self, field)).split(",") if name.strip())


class ReportSettings(CohortSettings):
    """The scheduled report: the joiner's store, and where the Evidently HTML goes."""

    db: Path
    """The joiner's SQLite join store (read only)."""
    output: str = ".fraud/monitor/reports"
    """Folder the report is written to (local, or a ``gs://`` prefix): one dated folder per run."""
    min_rows: int = Field(default=100, ge=1)
    """A (version, endpoint) cohort with fewer matured rows gets no report page."""
