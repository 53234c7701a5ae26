"""Named Cloud Logging queries over the model server's structured logs.

The server (serving/) writes JSON lines in Cloud Logging's structured format; on GKE, Cloud Logging turns
each line into a LogEntry: ``severity`` -> ``severity``, ``httpRequest`` -> ``httpRequest``,
``logging.googleapis.com/trace`` -> ``trace``, ``logging.googleapis.com/spanId`` -> ``spanId``, and every
other key (``message``, ``event``, ``request_id``, ``model_version``, ``flagged``, ``latency_ms`` ...) ->
``jsonPayload.<key>``. A query here is a list of clauses over those LogEntry fields. The same clauses render
the Logging query language filter (``fraud logs NAME`` prints it) and evaluate a log line locally
(:func:`matches`), which is how the tests check every query against real server output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ops.resources import KSERVE_CONTAINER

# Where the server's pods run (manifests/base/inferenceservice.yaml).
DEFAULT_NAMESPACE = "fraud"

# Structured-log keys that Cloud Logging lifts out of jsonPayload into LogEntry fields.
_SPECIAL_KEYS = {
    "severity": "severity",
    "httpRequest": "httpRequest",
    "logging.googleapis.com/trace": "trace",
    "logging.googleapis.com/spanId": "spanId",
    "logging.googleapis.com/trace_sampled": "traceSampled",
    "logging.googleapis.com/labels": "labels",
    "logging.googleapis.com/sourceLocation": "sourceLocation",
}
_SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]
_OPS = ("=", "!=", ">=", "<=", ">", "<", ":")


class QueryError(ValueError):
    """Unknown query name, missing or malformed argument; the message says which."""


@dataclass(frozen=True)
class Clause:
    """One comparison ``field OP value`` of the Logging query language."""

    field: str
    op: str
    value: str | int | float

    def render(self) -> str:
        """The clause as Logging query language text."""
        value = self.value if isinstance(self.value, int | float) else json.dumps(self.value)
        return f"{self.field}{self.op}{value}"


@dataclass(frozen=True)
class AnyOf:
    """A disjunction of clauses (rendered in parentheses with OR)."""

    clauses: tuple[Clause, ...]

    def render(self) -> str:
        """The disjunction as Logging query language text."""
        return "(" + " OR ".join(c.render() for c in self.clauses) + ")"


Term = Clause | AnyOf


@dataclass(frozen=True)
class NamedQuery:
    """A query users call by name; ``argument`` names the value it needs (request id, trace id, version)."""

    name: str
    help: str
    argument: str | None = None
    default: str | None = None
    terms: Any = field(default=None, repr=False)  # callable(value, project) -> list[Term]


def _prediction() -> Clause:
    return Clause("jsonPayload.event", "=", "prediction")


def _trace_value(value: str, project: str | None) -> str:
    if value.startswith("projects/"):
        return value
    if not re.fullmatch(r"[0-9a-f]{32}", value):
        raise QueryError(f"a trace id is 32 hex digits (or projects/P/traces/ID), got {value!r}")
    if not project:
        raise QueryError("querying by trace id needs --project (the trace field is projects/P/traces/ID)")
    return f"projects/{project}/traces/{value}"


def _number(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError as exc:
        raise QueryError(f"{what} must be a number, got {value!r}") from exc
    if number < 0:
        raise QueryError(f"{what} must be >= 0, got {value!r}")
    return int(number) if number.is_integer() else number


QUERIES: dict[str, NamedQuery] = {
    q.name: q
    for q in [
        NamedQuery(
            "flagged",
            "predictions where at least one row was flagged as fraud",
            terms=lambda v, p: [_prediction(), Clause("jsonPayload.flagged", ">", 0)],
        ),
        NamedQuery(
            "errors",
            "server errors: ERROR and worse, and HTTP 5xx responses",
            terms=lambda v, p: [AnyOf((Clause("severity", ">=", "ERROR"), Clause("httpRequest.status", ">=", 500)))],
        ),
        NamedQuery(
            "rejected",
            "requests refused as bad input (HTTP 4xx), with the problem in jsonPayload.error",
            terms=lambda v, p: [Clause("httpRequest.status", ">=", 400), Clause("httpRequest.status", "<", 500)],
        ),
        NamedQuery(
            "slow",
            "predictions slower than MS milliseconds in the model (default 50)",
            argument="MS",
            default="50",
            terms=lambda v, p: [_prediction(), Clause("jsonPayload.latency_ms", ">=", _number(v, "MS"))],
        ),
        NamedQuery(
            "request",
            "every line of one request, by its x-request-id",
            argument="REQUEST_ID",
            terms=lambda v, p: [Clause("jsonPayload.request_id", "=", v)],
        ),
        NamedQuery(
            "trace",
            "every line of one trace (the id in Cloud Trace, or projects/P/traces/ID)",
            argument="TRACE_ID",
            terms=lambda v, p: [Clause("trace", "=", _trace_value(v, p))],
        ),
        NamedQuery(
            "model-version",
            "predictions served by one model version",
            argument="VERSION",
            terms=lambda v, p: [_prediction(), Clause("jsonPayload.model_version", "=", v)],
        ),
    ]
}


def parse_since(since: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``7d`` (before now) or an ISO-8601 timestamp, as an aware UTC datetime."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+)([smhd])", since.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] * amount
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"--since takes 30m, 2h, 7d or an ISO-8601 time, got {since!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def terms_for(name: str, value: str | None = None, project: str | None = None) -> list[Term]:
    """The clauses of a named query (its own, without the resource scope or time window)."""
    if name not in QUERIES:
        raise QueryError(f"unknown query {name!r}; choose one of: {', '.join(QUERIES)}")
    query = QUERIES[name]
    if query.argument:
        value = value if value is not None else query.default
        if value is None or value == "":
            raise QueryError(f"query {name!r} needs {query.argument}")
    elif value is not None:
        raise QueryError(f"query {name!r} takes no argument, got {value!r}")
    terms: list[Term] = query.terms(value, project)
    return terms


def build_filter(
    name: str,
    value: str | None = None,
    *,
    project: str | None = None,
    since: datetime | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    container: str = KSERVE_CONTAINER,
) -> str:
    """The complete Logging filter: the server's containers, the time window, and the named query."""
    scope = [
        Clause("resource.type", "=", "k8s_container"),
        Clause("resource.labels.namespace_name", "=", namespace),
        Clause("resource.labels.container_name", "=", container),
    ]
    if project:
        scope.append(Clause("resource.labels.project_id", "=", project))
    if since is not None:
        scope.append(Clause("timestamp", ">=", since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return "\n".join(term.render() for term in [*scope, *terms_for(name, value, project)])


def log_entry(line: Mapping[str, Any]) -> dict[str, Any]:
    """The LogEntry fields Cloud Logging makes of one structured JSON log line."""
    entry: dict[str, Any] = {"jsonPayload": {}}
    for key, value in line.items():
        if key in _SPECIAL_KEYS:
            entry[_SPECIAL_KEYS[key]] = value
        else:
            entry["jsonPayload"][key] = value
    return entry


def _lookup(entry: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = entry
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def fields_of(terms: Sequence[Term]) -> Iterator[str]:
    """Every LogEntry field path the terms compare."""
    for term in terms:
        if isinstance(term, AnyOf):
            yield from (c.field for c in term.clauses)
        else:
            yield term.field


def _compare(actual: Any, op: str, expected: Any, path: str) -> bool:
    if path == "severity":
        actual, expected = _SEVERITIES.index(str(actual)), _SEVERITIES.index(str(expected))
    elif isinstance(expected, int | float):
        try:
            actual = float(actual)
        except (TypeError, ValueError):
            return False
    if op == ":":
        return str(expected) in str(actual)
    return {
        "=": actual == expected,
        "!=": actual != expected,
        ">=": actual >= expected,
        "<=": actual <= expected,
        ">": actual > expected,
        "<": actual < expected,
    }[op]


def matches(terms: Sequence[Term], entry: Mapping[str, Any]) -> bool:
    """Evaluate the terms on a LogEntry (see :func:`log_entry`) as Cloud Logging would: a comparison on a
    missing field is false."""

    def clause_ok(clause: Clause) -> bool:
        present, actual = _lookup(entry, clause.field)
        return present and _compare(actual, clause.op, clause.value, clause.field)

    return all(
        any(clause_ok(c) for c in term.clauses) if isinstance(term, AnyOf) else clause_ok(term) for term in terms
    )


def fetch(filter_: str, project: str, limit: int = 50, client: Any = None) -> list[dict[str, Any]]:
    """Newest-first entries matching the filter, via google-cloud-logging (needs credentials)."""
    if client is None:
        from google.cloud import logging as cloud_logging

        client = cloud_logging.Client(project=project)
    from google.cloud.logging import DESCENDING

    entries = client.list_entries(
        resource_names=[f"projects/{project}"], filter_=filter_, order_by=DESCENDING, max_results=limit
    )
    return [entry.to_api_repr() for entry in entries]
