"""The embedded store's file (:mod:`fraud_detection.features.store`): its tables, and the JSON its ``changes`` rows
hold."""

from __future__ import annotations

import math
from collections.abc import Sequence

import orjson

from fraud_detection.features.table import Parsed

SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
  id INTEGER PRIMARY KEY, role TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, latest REAL NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_entity ON changes (role, key, seq);
CREATE INDEX IF NOT EXISTS changes_by_time ON changes (latest);
CREATE TABLE IF NOT EXISTS applied (
  tx_id TEXT PRIMARY KEY, event_time REAL NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS applied_by_time ON applied (event_time);
CREATE TABLE IF NOT EXISTS labels (tx_id TEXT PRIMARY KEY, label_time REAL NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS labels_by_time ON labels (label_time);
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 0), now REAL, seq INTEGER NOT NULL);
INSERT OR IGNORE INTO clock (id, now, seq) VALUES (0, NULL, 0);
CREATE TABLE IF NOT EXISTS progress (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition))
  WITHOUT ROWID;
"""
"""``changes`` holds one row per entity per write: a batch's events of that entity, or an event again with the
label it just got, as JSON arrays (:func:`items_text`), under the sequence number of the row's last event and the
latest event time in it (the row goes when that falls out of the retained span). Its rows are appended in the order
written and found by entity through ``changes_by_entity``: a batch dirties the pages at the table's end and one small
index entry per entity, not a page per entity. ``applied`` holds each applied id with its time and ``at``, the
``changes`` row that holds it (a label finds the event's entities there); ``labels`` the labels by id; ``clock``
"now" and the latest sequence number; ``progress`` how far the stream's writer has applied each partition of its
topic (the offset after the last message it applied), written in the same transaction as that batch."""


def items_text(events: Sequence[Parsed]) -> bytes:
    """A ``changes`` row's body: its events as JSON arrays, an unknown label's time (``inf``) as null."""
    return orjson.dumps(events)  # orjson writes inf as null


def parsed_items(body: bytes | str) -> list[Parsed]:
    """A ``changes`` row's events as the cache takes them (an unknown label's time is ``inf``)."""
    return [
        (tx_id, time, amount, keys, label, math.inf if label_time is None else label_time, seq)
        for tx_id, time, amount, keys, label, label_time, seq in orjson.loads(body)
    ]
