"""Build the components and serving images (``make images``); print each image's size and build time.

With a working Docker engine: ``docker build`` on the Dockerfiles' upstream base, as CD does. Otherwise podman
(runc runtime, ulimits at or below this machine's, see ``pipelines/containers.py``) on a Python base built from
Debian packages by ``containers/base.sh`` (rebuilt only when its inputs change).

pip inside a podman build uses the package index this machine's pip uses: its index settings are written to a
temporary pip.conf, which is mounted read-only at build time together with the CA bundle and any local
index or wheel folders. None of it lands in an image layer or in a Dockerfile default.

Standard library only: it runs before the project's venv exists.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines import containers as podman  # noqa: E402  (standard library only at import)

IMAGES = {"serving": "serving/Dockerfile", "components": "components/Dockerfile"}
LICENSE = "Apache-2.0"


def image_labels(name: str, tag: str) -> dict[str, str]:
    """The OCI labels of image ``name`` at version ``tag``: given at build time, the same for both images."""
    return {
        "org.opencontainers.image.title": f"fraud-detection-{name}",
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.licenses": LICENSE,
    }


PIP_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "default-timeout")
"""The host's pip settings a build needs to reach the same index (not its constraints or caches)."""


def version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def host_pip_settings() -> dict[str, str]:
    """The index settings of this machine's pip: its config files, then ``PIP_*`` environment variables."""
    settings: dict[str, str] = {}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.split(".", 1)[-1]
        if name in PIP_KEYS and not key.startswith(":env:"):
            settings[name] = value.strip().strip("'\"")
    for name in PIP_KEYS:
        env = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if env:
            settings[name] = env
    return settings


def ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts, if any."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.cert"], capture_output=True, text=True, check=False
    )
    path = Path(result.stdout.strip()) if result.returncode == 0 else None
    return path if path and path.is_file() else None


def local_paths(settings: dict[str, str]) -> list[Path]:
    """Folders the pip settings name on this machine (``file://`` indexes, find-links directories)."""
    paths: list[Path] = []
    for name in ("index-url", "extra-index-url", "find-links"):
        for item in settings.get(name, "").split():
            path = Path(item.removeprefix("file://"))
            if not (item.startswith("file://") or item.startswith("/")) or not path.exists():
                continue
            # A local index's pages link to files beside its simple/ folder (../../files/...): mount its root.
            if name != "find-links" and path.name == "simple":
                path = path.parent
            if path not in paths:
                paths.append(path)
    return paths


def pip_volumes(workdir: Path) -> list[str]:
    """``--volume`` arguments that give the build the host's index and CA bundle, read-only."""
    settings = host_pip_settings()
    config = configparser.ConfigParser()
    config["global"] = dict(settings)
    volumes = []
    bundle = ca_bundle()
    if bundle is not None:
        config["global"]["cert"] = "/run/fraud-build/ca.crt"
        volumes += ["--volume", f"{bundle}:/run/fraud-build/ca.crt:ro"]
    conf = workdir / "pip.conf"
    with conf.open("w") as handle:
        config.write(handle)
    volumes += ["--volume", f"{conf}:/etc/pip.conf:ro"]
    for path in local_paths(settings):
        volumes += ["--volume", f"{path}:{path}:ro"]
    return volumes


def image_size(engine: str, ref: str) -> int:
    out = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def build(names: list[str], base: str | None) -> list[dict[str, object]]:
    tag = version()
    rows: list[dict[str, object]] = []
    use_docker = docker_works()
    engine = "docker" if use_docker else "podman"
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="fraud-build-") as tmp:
        extra: list[str] = []
        if not use_docker:
            env["CONTAINERS_CONF"] = str(podman.write_containers_conf(REPO / ".fraud" / "containers"))
            if base is None:
                started = time.perf_counter()
                base = subprocess.run(
                    [str(REPO / "containers" / "base.sh")], check=True, stdout=subprocess.PIPE, text=True
                ).stdout.strip()
                seconds = time.perf_counter() - started
                rows.append(
                    {"image": base, "engine": engine, "seconds": round(seconds, 1), "bytes": image_size(engine, base)}
                )
            extra += ["--build-arg", f"PYTHON_IMAGE={base}", *podman.ulimit_args(), *pip_volumes(Path(tmp))]
        elif base is not None:
            extra += ["--build-arg", f"PYTHON_IMAGE={base}"]
        for name in names:
            ref = f"fraud-detection-{name}:{tag}"
            labels = [f"--label={key}={value}" for key, value in image_labels(name, tag).items()]
            command = [engine, "build", "-f", IMAGES[name], "-t", ref, *labels, *extra, "."]
            print(f"==> {name}: {' '.join(command)}", flush=True)
            started = time.perf_counter()
            subprocess.run(command, cwd=REPO, env=env, check=True)
            seconds = time.perf_counter() - started
            rows.append(
                {"image": ref, "engine": engine, "seconds": round(seconds, 1), "bytes": image_size(engine, ref)}
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help=f"which images, of {', '.join(IMAGES)} (default: both)")
    parser.add_argument("--base", help="Python base image (default: upstream with docker, containers/base.sh else)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    unknown = set(args.images) - set(IMAGES)
    if unknown:
        parser.error(f"unknown image(s): {', '.join(sorted(unknown))}")
    rows = build(args.images or list(IMAGES), args.base)
    print()
    print(f"{'image':<45} {'engine':<7} {'size':>9} {'build':>8}")
    for row in rows:
        size_mb = int(row["bytes"]) / 1e6  # type: ignore[call-overload]
        print(f"{row['image']:<45} {row['engine']:<7} {size_mb:>6.0f} MB {row['seconds']:>6} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
