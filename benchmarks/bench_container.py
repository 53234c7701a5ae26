"""Single-row req/s of the serving container beside the same server as a host process, in one run, with wrk.

Both serve the same model with the same settings (one worker, tracing off, JSON logs): the host process with
``python -m serving`` on 127.0.0.1, the container from the serving image as KServe runs it (model read-only
at /mnt/models, read-only root, tmpfs /tmp, the image's user, port 8080 published on 127.0.0.1 only, podman's
default bridge network). wrk (one thread) alternates between them, ``--rounds`` times, and the medians are
compared. Target: the container within 10 % of the host.

Usage: ``python benchmarks/bench_container.py [--duration 10] [--connections 8] [--rounds 3] [--json FILE]``
(``make bench-container``; needs ``make images`` and Debian's ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fraud_detection import __version__  # noqa: E402
from fraud_detection.schema import FEATURES  # noqa: E402
from pipelines.containers import ulimit_args, write_containers_conf  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.serving.conftest import make_model_dir  # noqa: E402

IMAGE = f"fraud-detection-serving:{__version__}"
PATH = "/v1/models/fraud-detector:predict"
SETTINGS = {"FRAUD_WORKERS": "1", "FRAUD_TRACING_EXPORTER": "none", "FRAUD_LOAD_RETRY_SECONDS": "1"}


def wait_ready(url: str, alive: callable, timeout: float = 120.0) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server behind {url} exited")
        try:
            if requests.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s")


def requests_per_second(url: str, script: Path, connections: int, seconds: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url + PATH]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    if re.search(r"Non-2xx or 3xx responses: \d+", out.stdout):
        raise RuntimeError(f"errors under load:\n{out.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{out.stdout}")
    return float(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="alternating host/container runs of each")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("podman") is None:
        print("needs wrk and podman (make sysdeps container-sysdeps)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="fraud-bench-container-"))
    env = {**os.environ, "CONTAINERS_CONF": str(write_containers_conf(work))}
    model = make_model_dir(work / "model")
    work.chmod(0o755)
    for path in [model, *model.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    body = json.dumps({"instances": [dict.fromkeys(FEATURES, 0.1)]})
    script = work / "post.lua"
    script.write_text(f"wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.body = '{body}'\n")

    host_port, container_port = free_port(), free_port()
    host_env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    host_env.update(SETTINGS, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    log = (work / "host.log").open("w")
    host = subprocess.Popen(
        [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(host_port), "--model-uri", str(model)],
        cwd=REPO,
        env=host_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    name = f"fraud-bench-{uuid.uuid4().hex[:8]}"
    run = ["podman", "run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp:rw,mode=1777,size=64m"]
    run += ["--volume", f"{model}:/mnt/models:ro", "--publish", f"127.0.0.1:{container_port}:8080", *ulimit_args()]
    run += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for key, value in SETTINGS.items():
        run += ["--env", f"{key}={value}"]
    subprocess.run([*run, IMAGE], env=env, check=True, capture_output=True, timeout=120)

    def container_alive() -> bool:
        state = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Running}}", name], env=env, capture_output=True, text=True
        )
        return state.stdout.strip() == "true"

    host_url, container_url = f"http://127.0.0.1:{host_port}", f"http://127.0.0.1:{container_port}"
    try:
        wait_ready(host_url, lambda: host.poll() is None)
        wait_ready(container_url, container_alive)
        for url in (host_url, container_url):
            requests_per_second(url, script, args.connections, 3)  # warm-up
        results: dict[str, list[float]] = {"host": [], "container": []}
        for _ in range(args.rounds):
            results["host"].append(requests_per_second(host_url, script, args.connections, args.duration))
            results["container"].append(requests_per_second(container_url, script, args.connections, args.duration))
    finally:
        subprocess.run(["podman", "rm", "--force", "--time", "5", name], env=env, capture_output=True, check=False)
        host.terminate()
        host.wait(timeout=20)
        log.close()
        shutil.rmtree(work, ignore_errors=True)

    host_rps, container_rps = statistics.median(results["host"]), statistics.median(results["container"])
    ratio = container_rps / host_rps
    print(f"single-row V1, wrk 1 thread x {args.connections} connections, {args.duration} s x {args.rounds} rounds:")
    print(f"  {'server':<36} {'req/s (median)':>14}   runs")
    print(f"  {'host process (python -m serving)':<36} {host_rps:>14.0f}   {[round(r) for r in results['host']]}")
    print(f"  {'serving container (podman)':<36} {container_rps:>14.0f}   {[round(r) for r in results['container']]}")
    verdict = "meets" if ratio >= 0.9 else "MISSES"
    print(f"  container / host = {ratio:.3f} ({verdict} the target: at most 10 % slower than the host)")
    if args.json:
        args.json.write_text(json.dumps({"host": results["host"], "container": results["container"], "ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
