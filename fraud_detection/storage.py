"""Read and write files at a local path or a ``gs://bucket/key`` URI.

Uses google-cloud-storage, which honours ``STORAGE_EMULATOR_HOST`` (tests point it at a
``gcp-storage-emulator`` server on 127.0.0.1). Clients are made on first use, never at import.

google-cloud-storage (3.x) retries a cut-off upload by itself. Without a precondition such a retry may overwrite
what someone else wrote meanwhile, so two kinds of ``gs://`` write carry one (``ifGenerationMatch``):

* :func:`upload_file` with ``create_only=True``: the object must not exist yet (generation 0). A version's
  model files are immutable; an upload retried after it had in fact landed finds the same bytes and passes.
* :func:`write_if_generation`: compare-and-set of one small object (the champion pointer).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

GCS_SCHEME = "gs://"


def is_gcs(uri: str) -> bool:
    """True for ``gs://`` URIs."""
    return uri.startswith(GCS_SCHEME)


def split_gcs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``. Raises ValueError for a URI with no bucket."""
    if not is_gcs(uri):
        raise ValueError(f"not a gs:// URI: {uri!r}")
    bucket, _, key = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"gs:// URI has no bucket: {uri!r}")
    return bucket, key


def _client() -> Any:
    from google.cloud import storage

    return storage.Client()


def download_file(uri: str, destination: Path) -> Path:
    """Copy one object (or local file) to ``destination``. Raises FileNotFoundError if it is missing."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not is_gcs(uri):
        source = Path(uri)
        if not source.is_file():
            raise FileNotFoundError(f"no such file: {uri}")
        shutil.copyfile(source, destination)
        return destination
    from google.api_core.exceptions import NotFound

    bucket, key = split_gcs(uri)
    try:
        _client().bucket(bucket).blob(key).download_to_filename(str(destination))
    except NotFound as error:
        destination.unlink(missing_ok=True)
        raise FileNotFoundError(f"no such object: {uri}") from error
    return destination


class PreconditionFailed(RuntimeError):
    """A ``gs://`` object's generation is no longer the one the write was conditioned on."""


def _md5_base64(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def upload_file(source: Path, uri: str, create_only: bool = False) -> str:
    """Copy a local file to ``uri`` (a local path or ``gs://``). Returns ``uri``.

    Args:
        create_only: on ``gs://``, write only if no object is there yet (``ifGenerationMatch=0``); an existing
            object with the same bytes counts as written (a retried upload that had landed), one with other bytes
            raises FileExistsError. Ignored for local paths (callers stage those and rename).
    """
    if not is_gcs(uri):
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return uri
    bucket, key = split_gcs(uri)
    blob = _client().bucket(bucket).blob(key)
    if not create_only:
        blob.upload_from_filename(str(source))
        return uri
    from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

    try:
        blob.upload_from_filename(str(source), if_generation_match=0)
    except GcsPreconditionFailed:
        existing = _client().bucket(bucket).get_blob(key)
        if existing is None or existing.md5_hash != _md5_base64(source):
            raise FileExistsError(f"{uri} already exists with other content; it is immutable") from None
    return uri


def read_with_generation(uri: str) -> tuple[bytes | None, int]:
    """A ``gs://`` object's bytes and generation; ``(None, 0)`` when there is no such object.

    The generation is read before the bytes, so the bytes are never older than the generation returned: a write
    conditioned on it can only fail spuriously, never succeed over an object the caller has not seen.
    """
    from google.api_core.exceptions import NotFound
    from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

    bucket, key = split_gcs(uri)
    blob = _client().bucket(bucket).get_blob(key)
    if blob is None:
        return None, 0
    generation = int(blob.generation)
    try:
        return blob.download_as_bytes(if_generation_match=generation), generation
    except (NotFound, GcsPreconditionFailed):
        return read_with_generation(uri)


def write_if_generation(uri: str, payload: bytes, generation: int, content_type: str = "application/json") -> int:
    """Write a ``gs://`` object only if its generation is still ``generation`` (0: only if absent).

    Returns the new generation. Raises :class:`PreconditionFailed` when someone else wrote it first.
    """
    from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

    bucket, key = split_gcs(uri)
    blob = _client().bucket(bucket).blob(key)
    try:
        blob.upload_from_string(payload, content_type=content_type, if_generation_match=generation)
    except GcsPreconditionFailed as error:
        raise PreconditionFailed(f"{uri}: generation is no longer {generation}") from error
    return int(blob.generation)


def delete_prefix(uri: str) -> int:
    """Delete every object under a ``gs://`` prefix, or a local folder. Returns how many files went."""
    if not is_gcs(uri):
        folder = Path(uri)
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
        return count
    bucket, prefix = split_gcs(uri)
    blobs = list(_client().list_blobs(bucket, prefix=prefix.rstrip("/") + "/"))
    for blob in blobs:
        blob.delete()
    return len(blobs)


def upload_dir(source: Path, uri: str, last: str | None = None, create_only: bool = False) -> str:
    """Copy every file under ``source`` to ``uri`` keeping relative paths. Returns ``uri``.

    Args:
        last: a relative path uploaded after every other file (a reader's marker that the rest is complete).
        create_only: see :func:`upload_file`.
    """
    paths = sorted(
        (p for p in source.rglob("*") if p.is_file()), key=lambda p: (p.relative_to(source).as_posix() == last, p)
    )
    for path in paths:
        upload_file(path, f"{uri.rstrip('/')}/{path.relative_to(source).as_posix()}", create_only=create_only)
    return uri


def download_dir(uri: str, destination: Path) -> Path:
    """Copy every object under the ``uri`` prefix (or a local folder) into ``destination``.

    Raises FileNotFoundError when nothing is there.
    """
    destination.mkdir(parents=True, exist_ok=True)
    if not is_gcs(uri):
        source = Path(uri)
        if not source.is_dir():
            raise FileNotFoundError(f"no such directory: {uri}")
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return destination
    bucket, prefix = split_gcs(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    found = False
    for blob in _client().list_blobs(bucket, prefix=prefix):
        relative = blob.name[len(prefix) :]
        if not relative or relative.endswith("/"):
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
        found = True
    if not found:
        raise FileNotFoundError(f"no objects under {uri}")
    return destination
