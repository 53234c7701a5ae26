"""MLflow model registry operations: find the champion, register a candidate, move aliases.

The registered model's versions point at each training run's ``model`` (MLflow's XGBoost flavour) when
XGBoost won the bake-off, else at the run's ``serving_model/`` folder (the run's ``model_uri`` tag says
which); each run also carries ``serving_model/``, the serving model directory, which is what the predictor loads.

Every call that can meet a restarting tracking server goes through :func:`retrying`, and each is safe to
repeat: :func:`register` finds the version a run already registered before it creates one, aliases and tags
are set to a value, not incremented. MLflow's own HTTP client retries too (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``);
this layer catches what gets through it and fails with a message that names the operation and the server.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fraud_detection import modeldir

log = logging.getLogger(__name__)
T = TypeVar("T")

CHAMPION = "champion"
CHALLENGER = "challenger"
SERVING_ARTIFACT = "serving_model"


@dataclass
class RegisteredModel:
    """A model version and a local copy of its serving model directory."""

    version: str
    run_id: str
    model_dir: Path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class RetryPolicy:
    """How long a registry operation keeps trying through transient failures (exponential backoff).

    The default waits 1, 2, 4, 8, 16, 20 and 20 s between eight attempts: about 70 s, enough for a tracking
    server's pod to be rescheduled and start (the restart test's server takes 10-40 s on a busy 2-core machine).
    """

    attempts: int = 8
    first_wait_seconds: float = 1.0
    max_wait_seconds: float = 20.0


DEFAULT_RETRY = RetryPolicy()

TRANSIENT_ERROR_CODES = frozenset({"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"})
"""MLflow error codes worth another try: the server failed or was unreachable, not the request."""


def is_transient(error: BaseException) -> bool:
    """True for failures a later attempt can get past: connection errors and server-side MLflow errors."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError):
        return True
    return isinstance(error, MlflowException) and str(error.error_code) in TRANSIENT_ERROR_CODES


class RegistryUnavailable(RuntimeError):
    """A registry operation still failed after every retry."""


def retrying(
    what: str, operation: Callable[..., T], *args: Any, policy: RetryPolicy = DEFAULT_RETRY, where: str = ""
) -> T:
    """Run ``operation(*args)`` (which must be safe to repeat), retrying transient failures with exponential backoff.

    Raises :class:`RegistryUnavailable` naming ``what`` and ``where`` once the attempts are spent; other errors
    pass through at once.
    """
    import tenacity

    def note(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (attempt %d of %d): %s; retrying", what, state.attempt_number, policy.attempts, error)

    try:
        for attempt in tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.attempts),
            wait=tenacity.wait_exponential(min=policy.first_wait_seconds, max=policy.max_wait_seconds),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=note,
            reraise=False,
        ):
            with attempt:
                return operation(*args)
    except tenacity.RetryError as error:
        last = error.last_attempt.exception()
        raise RegistryUnavailable(
            f"{what} failed {policy.attempts} times{f' against {where}' if where else ''}: {last}"
        ) from last
    raise AssertionError("unreachable")  # pragma: no cover


def client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` bound to ``tracking_uri`` (registry included)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def version_by_alias(mlflow_client: Any, name: str, alias: str, download_to: Path) -> RegisteredModel | None:
    """The version behind ``alias`` with its serving directory downloaded, or None if there is none."""
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if "RESOURCE_DOES_NOT_EXIST" in str(error.error_code) or "not found" in str(error).lower():
            return None
        raise
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=SERVING_ARTIFACT, dst_path=str(download_to)
    )
    return RegisteredModel(version=str(version.version), run_id=str(version.run_id), model_dir=Path(local))


def version_of_run(mlflow_client: Any, name: str, run_id: str) -> str | None:
    """The lowest version of ``name`` registered from ``run_id``, or None."""
    found = mlflow_client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    return str(min(int(v.version) for v in found)) if found else None


def register(mlflow_client: Any, name: str, run_id: str, tags: dict[str, str]) -> str:
    """Register the ``model`` logged by ``run_id`` as a version of ``name``; returns the version.

    Idempotent: a run already registered under ``name`` gets its existing version back, so a retried step
    (after a crash, or an error once the version existed) never leaves a second version of the same model.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    existing = version_of_run(mlflow_client, name, run_id)
    if existing is not None:
        return existing
    try:
        mlflow_client.create_registered_model(
            name, description="Card-fraud model (bake-off winner); alias 'champion' is what KServe serves."
        )
    except MlflowException as error:
        if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
            raise
    run = mlflow_client.get_run(run_id)
    model_uri = run.data.tags.get("model_uri") or f"runs:/{run_id}/model"
    if model_uri == f"runs:/{run_id}/{SERVING_ARTIFACT}":
        # not an MLflow model flavour (the MLP or the blend won): the version's source is the run's serving folder
        source = f"{run.info.artifact_uri.rstrip('/')}/{SERVING_ARTIFACT}"
        return str(mlflow_client.create_model_version(name, source, run_id=run_id, tags=tags).version)
    version = mlflow.register_model(model_uri, name, tags=tags)
    return str(version.version)


def set_alias(mlflow_client: Any, name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``."""
    mlflow_client.set_registered_model_alias(name, alias, version)


def alias_version(mlflow_client: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if "RESOURCE_DOES_NOT_EXIST" in str(error.error_code) or "not found" in str(error).lower():
            return None
        raise


def follow_pointer(
    mlflow_client: Any,
    name: str,
    pointer_version: Callable[[], str | None],
    policy: RetryPolicy = DEFAULT_RETRY,
    rounds: int = 10,
) -> str | None:
    """Bring the ``champion`` alias in step with the champion pointer of record; returns the version it names.

    The alias is written, then the pointer read again; if the pointer moved meanwhile (another promotion won
    after this one read it), the alias is written again. So whichever promotion writes the alias last has
    read the pointer after the last move, and the alias ends where the pointer is, whatever the interleaving
    of alias writes. A promotion killed between its move and this step leaves the alias behind until the next
    promotion runs this; the pointer stays the record.
    """
    from fraud_detection import champion as champion_module

    target = pointer_version()
    for _ in range(rounds):
        if target is None:
            return None
        version = target
        retrying(f"set alias {CHAMPION} -> {version}", set_alias, mlflow_client, name, CHAMPION, version, policy=policy)
        champion_module.checkpoint("alias-written")
        target = pointer_version()
        if target == version:
            return version
    raise RegistryUnavailable(f"alias {CHAMPION!r} of {name} could not catch up with the champion pointer")


def same_model(a: Path, b: Path) -> bool:
    """True when two model directories hold the same family with byte-identical model files."""
    meta_a, meta_b = modeldir.read_metadata(a), modeldir.read_metadata(b)
    if (meta_a.family, sorted(meta_a.files), meta_a.blend_weights) != (
        meta_b.family,
        sorted(meta_b.files),
        meta_b.blend_weights,
    ):
        return False
    return all(file_sha256(a / name) == file_sha256(b / name) for name in meta_a.files)
