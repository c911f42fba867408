"""Prometheus metrics of the gateway: one registry per app, bounded labels only."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.recent import RecentLatency

NO_EXPERT = "none"  # requests refused before an expert was chosen

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
_RATE_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000)
_ROUTING_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class ExpertSeries:
    """One expert's children of the per-request series, looked up once: `labels()` validates and locks each time."""

    inflight: Any
    duration: Any
    ttft: Any
    itl: Any
    tokens_per_second: Any
    prompt_tokens: Any
    output_tokens: Any
    client_disconnects: Any


class GatewayMetrics:
    """Every series the gateway exports, registered on a registry of its own."""

    def __init__(self, experts: Iterable[str], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("coe_requests", "Requests answered", ["expert", "endpoint", "status"], registry=r)
        self.duration = Histogram(
            "coe_request_duration_seconds", "Request received to last byte sent", ["expert"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.ttft = Histogram(
            "coe_time_to_first_token_seconds", "Request received to first content relayed (streams)", ["expert"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.itl = Histogram(
            "coe_inter_token_latency_seconds", "Gap between consecutive content chunks (streams)", ["expert"],
            buckets=_GAP_BUCKETS, registry=r,
        )
        self.tokens_per_second = Histogram(
            "coe_output_tokens_per_second", "Completion tokens per second (streams: decode time; else: whole answer)",
            ["expert"], buckets=_RATE_BUCKETS, registry=r,
        )
        self.prompt_tokens = Counter("coe_prompt_tokens", "Prompt tokens (engine usage)", ["expert"], registry=r)
        self.output_tokens = Counter("coe_output_tokens", "Completion tokens (engine usage)", ["expert"], registry=r)
        self.routing_decisions = Counter(
            "coe_routing_decisions", "Routing decisions", ["category", "expert", "reason"], registry=r
        )
        self.routing_duration = Histogram(
            "coe_routing_duration_seconds", "Time to embed and classify one query", buckets=_ROUTING_BUCKETS, registry=r
        )
        self.routing_stages = Counter(
            "coe_routing_stages", "Which router stage decided (first_busy: the second stage gave way to load)",
            ["stage"], registry=r,
        )
        self.router_confidence = Histogram(
            "coe_router_confidence", "Probability of the router's top category", buckets=_CONFIDENCE_BUCKETS, registry=r
        )
        self.inflight = Gauge(
            "coe_inflight_requests", "Requests being answered", ["expert"], registry=r, multiprocess_mode="livesum"
        )
        self.expert_up = Gauge(
            "coe_expert_up", "1 when the expert is healthy", ["expert"], registry=r, multiprocess_mode="livemax"
        )
        self.upstream_errors = Counter(
            "coe_upstream_errors", "Failures talking to an expert's engine", ["expert", "kind"], registry=r
        )
        self.engine_rejections = Counter(
            "coe_engine_rejections", "Requests an engine refused as invalid (4xx but 429): client errors, not faults",
            ["expert", "status"], registry=r,
        )
        self.fallbacks = Counter(
            "coe_fallbacks", "Requests moved to another expert", ["from_expert", "to_expert", "reason"], registry=r
        )
        self.replica_up = Gauge(
            "coe_replica_up", "1 when the replica's breaker is closed", ["expert", "replica"], registry=r,
            multiprocess_mode="livemax",
        )
        self.replica_attempts = Counter(
            "coe_replica_attempts", "Requests sent to each replica, by outcome before the first byte",
            ["expert", "replica", "outcome"], registry=r,
        )
        self.resumes = Counter(
            "coe_resumes", "Streams continued elsewhere after breaking mid-answer", ["expert", "reason"], registry=r
        )
        self.client_disconnects = Counter(
            "coe_client_disconnects", "Clients that left before their answer ended", ["expert"], registry=r
        )
        self.recent_ttft = RecentLatency()  # for /admin/experts: this process's last time-to-first-token values
        self._series: dict[str, ExpertSeries] = {}
        self._request_counts: dict[tuple[str, str, str], Any] = {}
        for name in experts:
            # Present from the start, so dashboards and rate() see zeros rather than gaps.
            self.inflight.labels(name)
            self.expert_up.labels(name)
            self.output_tokens.labels(name)
            self.prompt_tokens.labels(name)

    def expert(self, name: str) -> ExpertSeries:
        """The expert's per-request series (experts are few and bounded by the registry, so this stays small)."""
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = ExpertSeries(
                self.inflight.labels(name), self.duration.labels(name), self.ttft.labels(name),
                self.itl.labels(name), self.tokens_per_second.labels(name), self.prompt_tokens.labels(name),
                self.output_tokens.labels(name), self.client_disconnects.labels(name),
            )
        return series

    def request_count(self, expert: str, endpoint: str, status: str) -> Any:
        """The `coe_requests_total` child for one outcome, looked up once."""
        key = (expert, endpoint, status)
        child = self._request_counts.get(key)
        if child is None:
            child = self._request_counts[key] = self.requests.labels(expert, endpoint, status)
        return child

    def exposition(self) -> bytes:
        """The text format; merged across workers when uvicorn runs several (PROMETHEUS_MULTIPROC_DIR)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
