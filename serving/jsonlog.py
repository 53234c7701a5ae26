"""Cloud Logging structured JSON lines for the server's processes: the handler and the thread that writes its lines.

:func:`serving.telemetry.configure_logging` installs :func:`structured_handler` on the root logger. Why a handler
of our own and a writer thread: docs/serving.md, "Where a request's time goes" and "The tail".
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class BackgroundWriter:
    """A text stream whose writes are handed to a thread that writes them to ``stream`` every ``interval`` seconds.

    One log line per request written straight to stdout costs a ``write`` system call on the event loop, and that
    call blocks whenever the reader falls behind (a full pipe to the container runtime, a busy disk under dirty-page
    throttling): every request in flight waits. Here a write only appends to a list; the thread joins the lines
    and writes them in chunks of whole lines of at most :data:`ATOMIC_WRITE` bytes (so the lines of several worker
    processes sharing one pipe never interleave). :meth:`close` (at logging shutdown) writes what is left.
    """

    ATOMIC_WRITE = 4096
    """POSIX ``PIPE_BUF``: a write of at most this many bytes to a pipe is never interleaved with another."""

    def __init__(self, stream: Any, interval: float = 0.02) -> None:
        import threading

        self.stream = stream
        self.interval = interval
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def write(self, text: str) -> int:
        self._pending.append(text)  # list.append is atomic under the interpreter lock
        return len(text)

    def flush(self) -> None:
        """Nothing on the request path: the writer thread flushes."""

    def isatty(self) -> bool:
        return bool(self.stream.isatty())

    def drain(self) -> None:
        """Write and flush everything written so far (the writer thread calls it every ``interval``)."""
        with self._lock:
            pending, self._pending = self._pending, []
            if not pending:
                return
            chunk: list[str] = []
            size = 0
            for text in pending:
                if chunk and size + len(text) > self.ATOMIC_WRITE:
                    self.stream.write("".join(chunk))
                    self.stream.flush()
                    chunk, size = [], 0
                chunk.append(text)
                size += len(text)
            self.stream.write("".join(chunk))
            self.stream.flush()

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            self.drain()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self.drain()


def structured_handler(project: str | None) -> logging.Handler:
    """google-cloud-logging's :class:`StructuredLogHandler` writing the same fields, each line encoded once by orjson.

    The library builds a line from its record filter's three ``json.dumps`` calls, a ``json.dumps`` of the payload
    and a ``%`` template: about 60 µs a line, a tenth of a traced request's time. This one reads the same values
    (the record's ``json_fields``, ``http_request``, the current OpenTelemetry span, the logger name, the source
    line) and encodes them in one call: about 10 µs. Field names, their meaning and the one-time diagnostic
    line are the library's.
    """
    import collections.abc

    import orjson
    from google.cloud import logging_v2
    from google.cloud.logging_v2.handlers import StructuredLogHandler
    from google.cloud.logging_v2.handlers.structured_log import GCP_STRUCTURED_LOGGING_FIELDS
    from opentelemetry import trace

    invalid = trace.INVALID_SPAN
    traces = f"projects/{project}/traces/" if project else ""

    class Handler(StructuredLogHandler):
        def format(self, record: logging.LogRecord) -> str:
            fields = getattr(record, "json_fields", None)
            if isinstance(record.msg, collections.abc.Mapping):
                payload = {**record.msg, **fields} if isinstance(fields, collections.abc.Mapping) else dict(record.msg)
            else:
                payload = dict(fields) if isinstance(fields, collections.abc.Mapping) else {}
                message = record.getMessage()
                if message != "None":
                    payload["message"] = message
            for key in GCP_STRUCTURED_LOGGING_FIELDS.intersection(payload):
                del payload[key]
            span = trace.get_current_span()
            if span is invalid:
                trace_id, span_id, sampled = "", "", False
            else:
                context = span.get_span_context()
                trace_id = f"{traces}{context.trace_id:032x}"
                span_id, sampled = f"{context.span_id:016x}", context.trace_flags.sampled
            payload["severity"] = record.levelname
            payload["logging.googleapis.com/labels"] = {"python_logger": record.name} if record.name else {}
            payload["logging.googleapis.com/trace"] = trace_id
            payload["logging.googleapis.com/spanId"] = span_id
            payload["logging.googleapis.com/trace_sampled"] = sampled
            payload["logging.googleapis.com/sourceLocation"] = {
                "line": record.lineno,
                "file": record.pathname,
                "function": record.funcName,
            }
            payload["httpRequest"] = getattr(record, "http_request", None) or {}
            return orjson.dumps(payload, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()

        def emit(self, record: logging.LogRecord) -> None:
            """The line goes to the writer thread; no flush here (StreamHandler flushes after every line)."""
            if logging_v2._instrumentation_emitted is False:
                self.emit_instrumentation_info()
            try:
                self.stream.write(self.format(record) + "\n")
            except Exception:  # as StreamHandler: a line that cannot be written is reported, never raised
                self.handleError(record)

        def flush(self) -> None:
            self.stream.drain()

        def close(self) -> None:
            self.stream.close()
            super().close()

    handler = Handler(project_id=project, stream=BackgroundWriter(sys.stdout))
    handler.filters.clear()  # the library's filter only prepares what format() above reads by itself
    return handler
