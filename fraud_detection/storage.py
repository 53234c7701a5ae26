"""Read and write files at a local path or a ``gs://bucket/key`` URI.

Uses google-cloud-storage, which honours ``STORAGE_EMULATOR_HOST`` (tests point it at a
``gcp-storage-emulator`` server on 127.0.0.1). Clients are made on first use, never at import.
"""

from __future__ import annotations

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


def upload_file(source: Path, uri: str) -> str:
    """Copy a local file to ``uri`` (a local path or ``gs://``). Returns ``uri``."""
    if not is_gcs(uri):
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return uri
    bucket, key = split_gcs(uri)
    _client().bucket(bucket).blob(key).upload_from_filename(str(source))
    return uri


def upload_dir(source: Path, uri: str) -> str:
    """Copy every file under ``source`` to ``uri`` keeping relative paths. Returns ``uri``."""
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        upload_file(path, f"{uri.rstrip('/')}/{path.relative_to(source).as_posix()}")
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
