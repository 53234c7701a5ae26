"""The label joiner's speed in labels per second: Kafka message values decoded and upserted into the SQLite join
store the way ``monitor.joiner`` does (batches of ``--batch``, one transaction each), into a store that already
holds the scored records; then the same labels again (a full redelivery: every upsert loses), and a CSV import.

    .venv/bin/python benchmarks/bench_joiner.py [--records 200000] [--labels 200000] [--batch 1000]

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fraud_detection.monitoring import join, labels  # noqa: E402
from fraud_detection.monitoring.records import Prediction, record  # noqa: E402
from monitor.joiner import import_labels  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def _records(count: int) -> list:  # type: ignore[type-arg]
    features = {f"V{i}": 0.5 for i in range(1, 29)} | {"Amount": 12.5}
    return [
        record(
            Prediction(
                transaction_id=f"tx-{i}", model_version="3", features=features, probability=0.01, decision=False
            ),
            inference_service="fraud-detector",
            namespace="fraud",
            time=START + timedelta(seconds=i),
        )
        for i in range(count)
    ]


def _label_messages(count: int, records: int) -> list[tuple[bytes, bytes]]:
    return [
        labels.encode(
            labels.Label(
                tx_id=f"tx-{(i * 7919) % records}", label=i % 50 == 0, label_time=START + timedelta(days=3, seconds=i)
            )
        )
        for i in range(count)
    ]


def _timed_upserts(store: join.JoinStore, messages: list[tuple[bytes, bytes]], batch: int) -> float:
    began = time.perf_counter()
    for start in range(0, len(messages), batch):
        store.add_labels(labels.decode(key, value) for key, value in messages[start : start + batch])
    return time.perf_counter() - began


def main() -> None:
    """Run the three measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--labels", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-joiner-") as tmp:
        store = join.JoinStore(Path(tmp) / "join.sqlite")
        store.add_records(_records(args.records))
        messages = _label_messages(args.labels, args.records)
        first = _timed_upserts(store, messages, args.batch)
        again = _timed_upserts(store, messages, args.batch)
        csv_file = Path(tmp) / "labels.csv"
        with csv_file.open("w") as handle:
            handle.write("tx_id,label,label_time\n")
            for key, value in messages:
                label = labels.decode(key, value)
                handle.write(f"{label.tx_id},{label.label},{label.label_time.isoformat()}\n")
        began = time.perf_counter()
        import_labels(Path(tmp) / "import.sqlite", [csv_file], batch=args.batch)
        imported = time.perf_counter() - began
        store.close()
    print(
        f"{args.labels:,} labels onto {args.records:,} scored records, "
        f"batches of {args.batch:,} (SQLite, WAL, FULL sync)\n"
    )
    print("| path | labels/s |")
    print("| --- | ---: |")
    for name, seconds in (("topic messages: decode + upsert", first), ("the same again (all duplicates)", again),
                          ("CSV file import", imported)):  # fmt: skip
        print(f"| {name} | {args.labels / seconds:,.0f} |")


if __name__ == "__main__":
    main()
