"""The champion pointer of record, moved only by compare-and-set.

``{serving_root}/champion.json`` names the champion: its registry version and the exported model directory
that serves it. A promotion reads it (with a token: the object's generation on ``gs://``, a counter in the file
locally), gates the candidate against that champion, and then moves it with :func:`compare_and_set`, which
succeeds only if the token is unchanged. If another promotion moved the champion in between, it raises
:class:`ChampionMoved` and the caller re-evaluates against the new champion.

* ``gs://``: the write carries ``ifGenerationMatch`` (0 when there is no pointer yet); Cloud Storage itself
  refuses it if the object changed, so no lock is needed and a crashed writer holds nothing.
* local folder: read-compare-write runs under an exclusive ``flock`` on ``.champion.lock``; the file is replaced
  by an atomic rename, then the ``champion`` symlink (what ``fraud serve`` reads) is switched the same way.
  This covers processes on one machine (or sharing one POSIX filesystem with working ``flock``), not NFS.

MLflow's registry has no conditional alias update, so the ``champion`` alias follows this pointer rather than
being the record: see :func:`fraud_detection.registry.follow_pointer`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from fraud_detection import storage

log = logging.getLogger(__name__)

POINTER_FILE = "champion.json"
LINK = "champion"
LOCK_FILE = ".champion.lock"


@dataclass(frozen=True)
class Champion:
    """What the pointer names."""

    version: str
    uri: str
    run_id: str = ""


@dataclass(frozen=True)
class Observed:
    """The pointer as read: the champion (None when there is none yet) and the token a write must match."""

    champion: Champion | None
    token: int


class ChampionMoved(RuntimeError):
    """The pointer changed after it was read; ``current`` is what it holds now."""

    def __init__(self, current: Observed) -> None:
        version = current.champion.version if current.champion else "none"
        super().__init__(f"the champion moved to version {version} meanwhile")
        self.current = current


def _no_pause(point: str) -> None:
    """Production: nothing happens at a checkpoint."""


pause: Callable[[str], None] = _no_pause
"""Called at the promotion's read, compare, export and move points; tests replace it to interleave racers."""


def checkpoint(point: str) -> None:
    """Mark a point of the read-compare-write sequence (a no-op unless a test installed a scheduler)."""
    pause(point)


def pointer_uri(serving_root: str) -> str:
    """Where the pointer lives under ``serving_root``."""
    return f"{serving_root.rstrip('/')}/{POINTER_FILE}"


def _parse(payload: bytes | None) -> tuple[Champion | None, int]:
    if not payload:
        return None, 0
    record = json.loads(payload)
    return Champion(str(record["version"]), str(record["uri"]), str(record.get("run_id", ""))), int(
        record.get("generation", 0)
    )


def _payload(champion: Champion, generation: int) -> bytes:
    record = {**asdict(champion), "generation": generation, "updated_at": datetime.now(UTC).isoformat()}
    return (json.dumps(record, indent=2) + "\n").encode()


def read(serving_root: str) -> Observed:
    """The current champion and its token (``Observed(None, 0)`` before the first promotion)."""
    uri = pointer_uri(serving_root)
    if storage.is_gcs(uri):
        payload, generation = storage.read_with_generation(uri)
        return Observed(_parse(payload)[0], generation)
    path = Path(uri)
    champion, generation = _parse(path.read_bytes() if path.is_file() else None)
    return Observed(champion, generation)


def compare_and_set(serving_root: str, expected: Observed, new: Champion) -> Observed:
    """Point the champion at ``new`` if the pointer still holds what ``expected`` saw.

    Raises :class:`ChampionMoved` (carrying the current pointer) otherwise. Returns the pointer as written.
    """
    uri = pointer_uri(serving_root)
    if storage.is_gcs(uri):
        try:
            generation = storage.write_if_generation(uri, _payload(new, 0), expected.token)
        except storage.PreconditionFailed:
            current = read(serving_root)
            if _is_own_write(current, new):
                return current
            raise ChampionMoved(current) from None
        return Observed(new, generation)
    return _compare_and_set_local(Path(serving_root), expected, new)


def _is_own_write(current: Observed, new: Champion) -> bool:
    """After a 412: the pointer already holds exactly what this write carried, so the client library retried a
    write whose answer was lost and which had landed. Versions are unique, so no rival writes the same record."""
    return current.champion == new


def _compare_and_set_local(root: Path, expected: Observed, new: Champion) -> Observed:
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        current = read(str(root))
        if current.token != expected.token:
            raise ChampionMoved(current)
        generation = current.token + 1
        staging = root / f".{POINTER_FILE}.{os.getpid()}"
        with staging.open("wb") as handle:
            handle.write(_payload(new, generation))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, root / POINTER_FILE)
        link = root / f".{LINK}.{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(Path(new.uri).name, target_is_directory=True)
        os.replace(link, root / LINK)
        directory = os.open(root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return Observed(new, generation)
