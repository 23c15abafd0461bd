"""Prometheus metrics of one service instance, in a registry of its own.

A registry per app (not the global one) so several apps in one process (tests, a
benchmark) do not collide, and so ``/metrics`` shows only this service's series.
Route labels are route *templates* (``/api/v1/people/{person_id}``), never raw paths, to
keep the number of series bounded whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _GalleryCollector:
    """People/faces counts read at scrape time (cheap COUNT queries), not kept in sync by hand."""

    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self.counts = counts

    def collect(self) -> Any:
        try:
            people, faces = self.counts()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the gallery is unreachable
            return
        g = GaugeMetricFamily("facegate_gallery_people", "Enrolled people")
        g.add_metric([], people)
        yield g
        f = GaugeMetricFamily("facegate_gallery_faces", "Stored face embeddings")
        f.add_metric([], faces)
        yield f


class Metrics:
    """The service's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self.requests = Counter("facegate_http_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "facegate_http_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.inflight = Gauge("facegate_http_inflight", "Requests being handled", registry=r)
        self.decisions = Counter("facegate_gate_decisions", "Gate decisions", ["gate", "decision"], registry=r)
        self.auth_failures = Counter("facegate_auth_failures", "Failed authentications", ["reason"], registry=r)
        self.enrolments = Counter("facegate_enrolments", "Enrolment requests by outcome", ["outcome"], registry=r)
        self.inference = Histogram(
            "facegate_inference_seconds", "Model time per call (inside the model lock)", ["stage"],
            buckets=LATENCY_BUCKETS, registry=r,
        )

    def watch_gallery(self, counts: Callable[[], tuple[int, int]]) -> None:
        self.registry.register(_GalleryCollector(counts))  # type: ignore[arg-type]

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            await send(msg)

        self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.inflight.dec()
            route = getattr(scope.get("route"), "path", None) or ("static" if status < 400 else "unmatched")
            self.metrics.requests.labels(scope.get("method", ""), route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
