"""A real OTLP/gRPC trace receiver on 127.0.0.1, for the tracing tests and ``benchmarks/bench_serving.py``."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Any

from tests.conftest import free_port


class OtlpReceiver:
    """Counts every span it is sent, and keeps them (unless ``keep`` is False: a load test sends millions)."""

    def __init__(self, keep: bool = True) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        receiver = self
        self.spans: list[Any] = []
        self.count = 0
        self._lock = threading.Lock()

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                received = [span for r in request.resource_spans for s in r.scope_spans for span in s.spans]
                with receiver._lock:
                    receiver.count += len(received)
                    if keep:
                        receiver.spans.extend(received)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans_of_trace(self, trace_id_hex: str, timeout: float = 15.0, at_least: int = 1) -> list[Any]:
        """Wait (bounded) until ``at_least`` spans of the trace arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [s for s in self.spans if s.trace_id.hex() == trace_id_hex]
            if len(found) >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def settled_count(self, quiet: float = 1.0, timeout: float = 30.0) -> int:
        """The span count once no span has arrived for ``quiet`` seconds (at most ``timeout`` seconds of waiting)."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            with self._lock:
                count = self.count
            if count == last:
                return count
            last = count
            time.sleep(quiet)
        return last

    def stop(self) -> None:
        self.server.stop(grace=None)
