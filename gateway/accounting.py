"""One record per request: filled in as the answer flows, closed exactly once into metrics and the request log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.metrics import NO_EXPERT, ExpertSeries, GatewayMetrics
from gateway.request_log import REQUEST_LOG, LogLine

request_log = logging.getLogger(REQUEST_LOG)


@dataclass
class RequestRecord:
    """What happened to one request; no prompt or answer text, no keys."""

    metrics: GatewayMetrics
    request_id: str
    endpoint: str
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)
    expert: str = NO_EXPERT
    replica: str | None = None
    resumes: list[str] = field(default_factory=list)  # why each continuation was needed, in order
    category: str | None = None
    confidence: float | None = None
    reason: str | None = None
    status: int = 200
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    usage_from_engine: bool = False
    first_token_at: float | None = None
    last_token_at: float | None = None
    content_events: int = 0
    error_kind: str | None = None
    disconnected: bool = False
    answer_parts: list[str] | None = None  # the answer's text, collected only when an audit policy keeps it
    on_close: list[Callable[[RequestRecord], None]] = field(default_factory=list)
    _inflight_expert: str | None = None
    _closed: bool = False
    _series: ExpertSeries | None = None  # the expert's metric children, looked up once per request

    def enter_expert(self, expert: str) -> None:
        """Count the request in flight for this expert (moves with a failover)."""
        if self._inflight_expert is not None:
            self.metrics.expert(self._inflight_expert).inflight.dec()
        self.expert = expert
        self._inflight_expert = expert
        self._series = self.metrics.expert(expert)
        self._series.inflight.inc()

    def _expert_series(self) -> ExpertSeries:
        if self._series is None:
            self._series = self.metrics.expert(self.expert)
        return self._series

    def content(self, now: float | None = None) -> None:
        """One content chunk relayed: feeds TTFT and inter-token latency."""
        now = now if now is not None else time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
            self._expert_series().ttft.observe(now - self.started)
            self.metrics.recent_ttft.observe(self.expert, now - self.started)
        elif self.last_token_at is not None:
            self._expert_series().itl.observe(now - self.last_token_at)
        self.last_token_at = now
        self.content_events += 1

    def usage(self, usage: dict[str, Any] | None) -> None:
        """Token counts as the engine reported them."""
        if not usage:
            return
        # Chat and completions say prompt/completion tokens; the Responses and Messages APIs input/output.
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        if isinstance(prompt, int):
            self.prompt_tokens = prompt
        if isinstance(completion, int):
            self.output_tokens = completion
            self.usage_from_engine = True

    def close(self, status: int | None = None) -> None:
        """Publish the request to metrics and the log; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        if status is not None:
            self.status = status
        now = time.perf_counter()
        m = self.metrics
        if self._inflight_expert is not None:
            m.expert(self._inflight_expert).inflight.dec()
        m.request_count(self.expert, self.endpoint, str(self.status)).inc()
        if self.expert != NO_EXPERT:
            series = self._expert_series()
            series.duration.observe(now - self.started)
            if self.output_tokens is None and self.content_events:
                self.output_tokens = self.content_events  # no usage from the engine: one token per chunk
            if self.prompt_tokens:
                series.prompt_tokens.inc(self.prompt_tokens)
            if self.output_tokens:
                series.output_tokens.inc(self.output_tokens)
            rate = self._output_rate(now)
            if rate is not None:
                series.tokens_per_second.observe(rate)
            if self.disconnected:
                series.client_disconnects.inc()
        if request_log.isEnabledFor(logging.INFO):
            # Handed over as a ready record: `Logger.info` would also walk the stack to find its caller.
            request_log.handle(logging.LogRecord(REQUEST_LOG, logging.INFO, __file__, 0, "%s",
                                                 (LogLine(self.log_fields(now)),), None))
        for hook in self.on_close:
            try:
                hook(self)
            except Exception:  # a hook (audit, token accounting) must never break the answer
                request_log.exception("a request-close hook failed")

    def _output_rate(self, now: float) -> float | None:
        """Tokens per second of decoding (streams: first to last token); of the whole answer when not streamed
        or when a stream's tokens came all at once."""
        if self.status != 200 or not self.output_tokens:
            return None
        if self.stream:
            decode = (self.last_token_at or 0) - (self.first_token_at or 0)
            if self.output_tokens > 1 and decode > 0:
                return (self.output_tokens - 1) / decode
            # One token, or every token in one socket read: the rate over the whole answer, as when not streamed.
        elapsed = now - self.started
        return self.output_tokens / elapsed if elapsed > 0 else None

    def log_fields(self, now: float) -> dict[str, Any]:
        """The request-log line's fields."""
        ttft = None if self.first_token_at is None else round(self.first_token_at - self.started, 6)
        return {
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "expert": self.expert,
            "replica": self.replica,
            "category": self.category,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "reason": self.reason,
            "status": self.status,
            "stream": self.stream,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "ttft_s": ttft,
            "duration_s": round(now - self.started, 6),
            "error": self.error_kind,
            "client_disconnected": self.disconnected,
            "resumes": self.resumes,
        }
