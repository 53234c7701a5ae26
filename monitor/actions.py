"""What the controller does for an alert: start one retraining run, or roll the champion back.

**One retraining run.** :class:`RetrainLease` keeps, in SQLite, which alert groups already started a run and
until when the last run holds the lease. A firing group starts a run only if it has not started one yet (while
an alert fires, Alertmanager re-sends its group every ``repeat_interval``) and no other group's run holds the
lease; both checks and the record are one ``BEGIN IMMEDIATE`` transaction, so concurrent requests (threads or
processes sharing the file) start at most one run. When the group resolves, its record goes, so the next
episode may retrain again once the lease has run out. The run itself is a callable: :class:`CommandRun` starts
a configured command (``fraud run`` with kfp.local, ``fraud submit`` on a cluster) and does not wait for it.

**Rollback.** The champion pointer moves back to the newest exported version older than the degraded one, by
:func:`fraud_detection.champion.compare_and_set` as a promotion moves it: if the champion is no longer the
degraded version, or moves between the read and the write, nothing changes.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fraud_detection import champion, modeldir, storage

log = logging.getLogger("monitor.actions")

LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS retrain_groups (group_key TEXT PRIMARY KEY, started_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS retrain_lease (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL,
                                          until REAL NOT NULL);
"""


@dataclass(frozen=True)
class RetrainRequest:
    """Why a run is started: the alert group and the alert names in it."""

    group_key: str
    alerts: tuple[str, ...]


Run = Callable[[RetrainRequest], None]
"""Starts a retraining run (raises if it could not be started); must not wait for the run to finish."""


class RetrainLease:
    """The record of started runs and the lease, in a SQLite file shared by every controller replica."""

    def __init__(self, path: Path, lease: timedelta) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lease = lease
        with self._connect() as connection:
            connection.executescript(LEASE_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        return connection

    def start_once(self, request: RetrainRequest, run: Run, now: datetime | None = None) -> str:
        """Start ``run`` for ``request`` unless its group already did or another run holds the lease; returns
        what happened. If ``run`` raises, nothing is recorded and the error passes on."""
        moment = (now or datetime.now(UTC)).timestamp()
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            started = connection.execute(
                "SELECT started_at FROM retrain_groups WHERE group_key = ?", (request.group_key,)
            ).fetchone()
            if started is not None:
                connection.execute("ROLLBACK")
                return "already started for this alert group"
            holder = connection.execute("SELECT holder, until FROM retrain_lease WHERE until > ?", (moment,)).fetchone()
            if holder is not None:
                connection.execute("ROLLBACK")
                return f"a run started for group {holder[0]} holds the lease"
            connection.execute("INSERT INTO retrain_groups VALUES (?, ?)", (request.group_key, moment))
            connection.execute(
                "INSERT OR REPLACE INTO retrain_lease VALUES (1, ?, ?)",
                (request.group_key, moment + self.lease.total_seconds()),
            )
            try:
                run(request)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return "started"
        finally:
            connection.close()

    def resolved(self, group_key: str) -> None:
        """The group's alerts resolved: its next firing may start a run again (once the lease has run out)."""
        with self._connect() as connection:
            connection.execute("DELETE FROM retrain_groups WHERE group_key = ?", (group_key,))

    def runs(self) -> list[str]:
        """Group keys whose run is on record, oldest first."""
        with self._connect() as connection:
            return [row[0] for row in connection.execute("SELECT group_key FROM retrain_groups ORDER BY started_at")]


@dataclass(frozen=True)
class CommandRun:
    """Start ``command`` in the background, its output in ``log_dir``; the alert is in ``FRAUD_RETRAIN_*``."""

    command: Sequence[str]
    log_dir: Path

    def __call__(self, request: RetrainRequest) -> None:
        """Start the command (an OSError, e.g. no such program, passes on) and return without waiting."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        with (self.log_dir / f"retrain-{stamp}.log").open("ab") as output:
            environment = {
                **os.environ,
                "FRAUD_RETRAIN_GROUP": request.group_key,
                "FRAUD_RETRAIN_ALERTS": ",".join(request.alerts),
            }
            subprocess.Popen(
                list(self.command),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                start_new_session=True,
            )
        log.info("retraining run started: %s (alert group %s)", " ".join(self.command), request.group_key)


EXPORT = re.compile(r"^v(\d+)$")


def exported_versions(serving_root: str) -> list[int]:
    """The versions exported under a local ``serving_root`` (``v<N>`` folders), ascending."""
    if storage.is_gcs(serving_root):
        raise NotImplementedError("rollback lists exported versions of a local serving root only (gs:// is not done)")
    root = Path(serving_root)
    found = (EXPORT.match(path.name) for path in root.iterdir() if path.is_dir()) if root.is_dir() else iter(())
    return sorted(int(match.group(1)) for match in found if match)


def rollback(serving_root: str, degraded_version: str) -> str:
    """Move the champion from ``degraded_version`` back to the newest exported version before it; returns what
    happened. Changes nothing unless the champion is ``degraded_version`` when read and when written."""
    observed = champion.read(serving_root)
    current = observed.champion
    if current is None or current.version != degraded_version:
        found = current.version if current else "none"
        return f"champion is version {found}, not the degraded {degraded_version}: nothing to roll back"
    if not degraded_version.isdigit():
        return f"version {degraded_version!r} is not a registry number: no previous version to go back to"
    older = [v for v in exported_versions(serving_root) if v < int(degraded_version)]
    if not older:
        return f"no exported version older than {degraded_version}: the champion stays"
    target = str(older[-1])
    uri = f"{serving_root.rstrip('/')}/v{target}"
    try:
        run_id = modeldir.read_metadata(Path(uri)).mlflow_run_id or ""
    except modeldir.ModelDirError as error:
        return f"version {target} cannot be served ({error}): the champion stays"
    champion.checkpoint("rollback-read")
    try:
        champion.compare_and_set(serving_root, observed, champion.Champion(target, uri, run_id))
    except champion.ChampionMoved as moved:
        return f"lost the race: {moved}; the champion was left as the other writer set it"
    log.warning("champion rolled back from version %s to %s", degraded_version, target)
    return f"rolled back from version {degraded_version} to {target}"
