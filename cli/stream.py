"""``fraud stream``: the Kafka stream scorer on this machine, and its helpers.

* ``fraud stream`` consumes the transactions topic and scores it with the local champion (:mod:`streaming`).
* ``fraud stream topics`` creates the transactions, results and dead-letter topics.
* ``fraud stream produce`` replays a data set (the built-in synthetic one, or a CSV/Parquet file in the
  credit-card schema) into the transactions topic, keyed by transaction id, optionally at a fixed rate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from cli.common import DefaultsFormatter
from streaming.main import add_options, run, settings_from_args

LOCAL_HOST = "127.0.0.1"
DEFAULT_MODEL_URI = ".fraud/serving/champion"


def add_stream_parser(subparsers: Any) -> None:
    """Register ``stream`` and its ``topics`` and ``produce`` subcommands."""
    parser = subparsers.add_parser(
        "stream",
        help="score a Kafka topic with the champion (fraud stream produce: replay a data set into it)",
        description="Consume the transactions topic, score each message with the champion, write one result per "
        "transaction to the results topic and the messages that cannot be scored to the dead-letter topic. Options "
        "override FRAUD_* variables; without either, the local champion and /metrics on 127.0.0.1:9100. Without a "
        "COMMAND it scores; `topics` and `produce` are helpers.",
        formatter_class=DefaultsFormatter,
    )
    add_options(parser)
    parser.set_defaults(handler=run_stream)
    commands = parser.add_subparsers(dest="stream_command", metavar="COMMAND")

    topics = commands.add_parser(
        "topics", help="create the transactions, results and dead-letter topics", formatter_class=DefaultsFormatter
    )
    topics.add_argument(
        "--partitions", type=int, default=6, help="partitions per topic (the most consumers that share it)"
    )
    topics.set_defaults(handler=run_topics)

    produce = commands.add_parser(
        "produce",
        help="replay a data set into the transactions topic",
        description="Publish each row's 29 features as one JSON message keyed by a transaction id (PREFIX-ROW).",
        formatter_class=DefaultsFormatter,
    )
    produce.add_argument(
        "--data", default="synthetic", help='CSV/Parquet file in the credit-card schema, or "synthetic"'
    )
    produce.add_argument("--rows", type=int, default=10_000, help="rows to send (synthetic: rows generated)")
    produce.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")
    produce.add_argument("--rate", type=float, default=0.0, help="messages per second; 0 = as fast as possible")
    produce.add_argument("--prefix", default="tx", help="transaction ids are PREFIX-ROW")
    produce.add_argument("--topic", default=None, help="topic to write (default: the transactions topic)")
    produce.set_defaults(handler=run_produce)


def _settings(args: argparse.Namespace, settings: Any) -> Any:
    serving_dir = getattr(settings, "serving_dir", None)
    local = {
        "model_uri": str(serving_dir) if serving_dir is not None else DEFAULT_MODEL_URI,
        "host": LOCAL_HOST,
    }
    return settings_from_args(args, fallbacks=local)


def run_stream(args: argparse.Namespace, settings: Any = None) -> int:
    """Handler of ``stream``: score until Ctrl-C."""
    return run(_settings(args, settings))


def run_topics(args: argparse.Namespace, settings: Any = None) -> int:
    """Handler of ``stream topics``."""
    from streaming.produce import create_topics

    stream = _settings(args, settings)
    config = {"bootstrap.servers": stream.bootstrap_servers, **stream.kafka_options}
    names = [stream.input_topic, stream.output_topic, stream.dead_letter_topic]
    created = create_topics(config, names, args.partitions)
    for name in names:
        print(f"{name}: {'created' if name in created else 'exists'}")
    return 0


def _rows(args: argparse.Namespace) -> Iterator[tuple[bytes | None, bytes]]:
    from fraud_detection import data, synth
    from fraud_detection.config import SYNTHETIC_URI
    from fraud_detection.schema import FEATURES
    from streaming.produce import encode_transaction

    if args.data == SYNTHETIC_URI:
        frame = synth.generate(synth.SyntheticConfig(n_rows=args.rows, seed=args.seed))
    else:
        frame = data.validate(data.read_table(args.data)).head(args.rows)
    for index, values in enumerate(frame[list(FEATURES)].itertuples(index=False, name=None)):
        yield f"{args.prefix}-{index}".encode(), encode_transaction(dict(zip(FEATURES, values, strict=True)))


def run_produce(args: argparse.Namespace, settings: Any = None) -> int:
    """Handler of ``stream produce``."""
    from streaming.produce import produce

    stream = _settings(args, settings)
    topic = args.topic or stream.input_topic
    config = {"bootstrap.servers": stream.bootstrap_servers, **stream.kafka_options}
    try:
        sent = produce(config, topic, _rows(args), rate=args.rate)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        print(f"fraud stream produce: error: {error}", file=sys.stderr)
        return 1
    print(f"sent {sent:,} transactions to {topic} on {stream.bootstrap_servers}")
    return 0
