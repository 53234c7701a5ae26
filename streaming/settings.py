"""The stream scorer's settings: the model server's (:class:`serving.settings.ServingSettings`) plus the Kafka ones.

One object per process, built by the entry point (:mod:`streaming.main`), never at import. Every field can be
set from the environment with the ``FRAUD_`` prefix, e.g. ``FRAUD_BOOTSTRAP_SERVERS=kafka:9092``. ``host`` and
``port`` are where the consumer serves ``/metrics``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from serving.settings import ServingSettings


class StreamSettings(ServingSettings):
    """Where the transactions come from, where the scores and the rejects go, and how much to take at once."""

    host: str = "0.0.0.0"
    """Address of the Prometheus ``/metrics`` endpoint."""
    port: int = Field(default=9100, ge=1, le=65535)
    """Port of the Prometheus ``/metrics`` endpoint."""
    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers, ``host:port[,host:port...]``."""
    input_topic: str = "transactions"
    """Topic of the transactions: one JSON object per message, of the 29 features keyed by transaction id, or, for a
    raw-transaction model, of the mapping's source columns keyed by the entity the topic is partitioned by."""
    output_topic: str = "fraud-scores"
    """Topic of the results, one per transaction, keyed by transaction id."""
    dead_letter_topic: str = "transactions-dead-letter"
    """Topic of the messages that cannot be scored: the original bytes, the reason in headers."""
    labels_topic: str = "fraud-labels"
    """Raw-transaction models only: topic of the labels (``{"tx_id", "label", "label_time"}``), applied to the
    entity-state store before each batch is scored (docs/streaming.md, "Streaming raw transactions")."""
    labels_idle_seconds: float = Field(default=1.0, gt=0.0)
    """Raw-transaction models only: with no transactions arriving, how often the labels topic is still read (labels
    are always applied up to the topic's end before each batch is scored)."""
    apply_transactions: bool = True
    """Raw-transaction models only: false makes a scorer that only reads the entity state another scorer keeps (a
    second model scored beside the one whose scorer applies): it applies no transaction and no label, and opens the
    embedded store read only (docs/streaming.md, "A scorer that only reads")."""
    role: Literal["scorer", "applier"] = "scorer"
    """Raw-transaction models only: ``applier`` makes a process that applies the transactions and labels to the
    entity-state store and scores nothing (the stream's writer without a model to score); scorers then only read,
    with ``wait_for_writer`` (docs/streaming.md, "Scorers that wait for the writer"). It consumes as
    ``<group_id>-applier`` (its labels as ``<group_id>-applier-labels``)."""
    wait_for_writer: bool = False
    """Raw-transaction models only, with ``apply_transactions`` false: before reading a batch's state, wait until the
    stream's writer (the scorer that applies, or a ``role=applier`` process, on the same input topic and store) has
    applied every message up to the batch's last, so the features are the ones the writer itself computes. The
    writer records how far it got in each partition in the same store step as the batch."""
    writer_wait_seconds: float = Field(default=30.0, gt=0.0)
    """Longest wait for the writer before a batch: past it the scorer stops with an error naming the partition (the
    batch stays uncommitted) and counts ``fraud_stream_writer_timeouts``."""
    group_id: str = "fraud-scorer"
    """Consumer group: replicas in one group share the input partitions."""
    batch_size: int = Field(default=2000, ge=1)
    """Most messages taken, scored and committed at once (a batch holds what has arrived, up to this many)."""
    batch_wait_seconds: float = Field(default=0.02, gt=0.0)
    """Longest wait for the first message when none has arrived (between two waits the scorer checks for a stop
    and for a new champion). A batch never waits to fill, so this adds no latency."""
    delivery_timeout_seconds: float = Field(default=30.0, gt=0.0)
    """How long a batch's results may take to be acknowledged before the consumer gives up (and restarts)."""
    reload_check_seconds: float = Field(default=10.0, ge=0.0)
    """How often the model directory is checked for a new champion; 0 = never."""
    kafka_options: dict[str, str] = Field(default_factory=dict)
    """Extra librdkafka settings for both clients (JSON), e.g. ``{"security.protocol": "SASL_SSL"}``."""
    batches_in_flight: int = Field(default=8, ge=1)
    """Most batches whose results may await the broker's acknowledgement while the scorer scores the next ones; a
    batch's offsets are committed once it and every batch before it are acknowledged. 1 waits for each batch's
    results before scoring the next (docs/streaming.md, "The tail at 5,000/s")."""

    @model_validator(mode="after")
    def _one_writer(self) -> StreamSettings:
        """An applier applies, and a scorer that waits for the writer does not."""
        if self.wait_for_writer and (self.apply_transactions or self.role == "applier"):
            raise ValueError(
                "wait_for_writer is for a scorer that only reads (role=scorer, apply_transactions=false): "
                "a process that applies the transactions is the writer itself"
            )
        if self.role == "applier" and not self.apply_transactions:
            raise ValueError("role=applier applies transactions: apply_transactions=false contradicts it")
        return self
