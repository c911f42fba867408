"""Hot reload: re-read the experts file, the router artifact and the key file, validate all, then swap at once.

Requests hold the service they started with (its selector, dispatcher and limiters), so streams in flight end on
the experts they began on while new requests see the new registry. Nothing changes unless every file is valid.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from prometheus_client.metrics import MetricWrapperBase

from gateway.auth import KeyRing
from gateway.dispatch import Dispatcher
from gateway.errors import APIError
from gateway.limits import ExpertLimiter
from gateway.metrics import GatewayMetrics
from gateway.registry import Registry, RegistryError, load_registry, warn_unclaimed
from gateway.resume import Resumer
from gateway.routing import Router
from gateway.serving import CompletionService
from gateway.state import GatewayState

log = logging.getLogger(__name__)

_EXPERT_LABELS = ("expert", "from_expert", "to_expert")


def file_sha256(path: Path | None) -> str | None:
    """The hex SHA-256 of a file, or None when there is none to read."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def artifact_fingerprint(folder: Path) -> str | None:
    """One SHA-256 over a router artifact's file names and contents (None when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(path.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


@dataclass
class LoadedConfig:
    """What the running configuration was read from, and when."""

    registry_path: Path
    registry_sha256: str | None
    artifact: Path
    artifact_sha256: str | None
    keys_path: Path | None
    keys_sha256: str | None
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        """For `/admin/config` and the reload answer."""
        return {
            "experts_file": {"path": str(self.registry_path), "sha256": self.registry_sha256},
            "router_artifact": {"path": str(self.artifact), "sha256": self.artifact_sha256},
            "keys_file": None if self.keys_path is None else {"path": str(self.keys_path), "sha256": self.keys_sha256},
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
        }


def describe_sources(state: GatewayState) -> LoadedConfig:
    """The running configuration's sources as they are on disk now (at start-up)."""
    settings = state.settings
    artifact = state.registry.router.artifact
    return LoadedConfig(settings.experts, file_sha256(settings.experts), artifact, artifact_fingerprint(artifact),
                        settings.api_keys_file, file_sha256(settings.api_keys_file))


def _reload_failed(message: str) -> APIError:
    return APIError(422, f"Reload refused, nothing changed: {message}", code="invalid_configuration")


def remove_expert_series(metrics: GatewayMetrics, name: str) -> None:
    """Drop every series labelled with this expert, so a removed expert's series stop."""
    metrics.recent_ttft.forget(name)
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        for label in _EXPERT_LABELS:
            try:
                metric.remove_by_labels({label: name})
            except ValueError:
                continue  # the metric has no such label


def start_expert_series(metrics: GatewayMetrics, name: str) -> None:
    """Series present from the start, as for the experts read at start-up."""
    for metric in (metrics.inflight, metrics.expert_up, metrics.output_tokens, metrics.prompt_tokens):
        metric.labels(name)


@dataclass
class _Read:
    registry: Registry
    router: Router | None
    keys: KeyRing | None
    sources: LoadedConfig


class Reloader:
    """Reads, validates and applies a new configuration; one reload at a time."""

    def __init__(self, state: GatewayState, router_loader: Callable[[Path], Router] | None) -> None:
        self.state = state
        self.router_loader = router_loader
        self.sources = describe_sources(state)
        self._lock = asyncio.Lock()
        self._retiring: dict[str, asyncio.Task[None]] = {}
        self._signalled: set[asyncio.Task[None]] = set()

    async def reload(self) -> dict[str, Any]:
        """Apply the files as they are now; raise a 422 naming file, key and reason when one is invalid."""
        async with self._lock:
            state = self.state
            if state.service is None or state.draining:
                raise APIError(503, "The gateway is starting or shutting down; reload later.", code="unavailable")
            read = await anyio.to_thread.run_sync(self._read)
            summary = self._apply(read)
            log.info("configuration reloaded: %s", summary)
            return summary

    def _read(self) -> _Read:
        """Every file read and checked, off the event loop (the router's load is CPU-bound)."""
        settings, state = self.state.settings, self.state
        try:
            registry = load_registry(settings.experts)
        except RegistryError as exc:
            raise _reload_failed(str(exc)) from exc
        artifact = registry.router.artifact
        fingerprint = artifact_fingerprint(artifact)
        router = state.router
        if self.router_loader is not None and (
            fingerprint is None or artifact != self.sources.artifact or fingerprint != self.sources.artifact_sha256
        ):
            try:
                router = self.router_loader(artifact)
            except Exception as exc:  # any failure to load leaves the running router in place
                raise _reload_failed(f"{artifact}: router.artifact: cannot load the router: {exc}") from exc
        keys = state.keys
        if settings.api_keys_file is not None:
            try:
                keys = KeyRing.load(settings.api_keys_file)
            except ValueError as exc:
                raise _reload_failed(str(exc)) from exc
        if router is not None:
            warn_unclaimed(registry, router.categories)
        sources = LoadedConfig(settings.experts, file_sha256(settings.experts), artifact, fingerprint,
                               settings.api_keys_file, file_sha256(settings.api_keys_file))
        return _Read(registry, router, keys, sources)

    def _apply(self, read: _Read) -> dict[str, Any]:
        """Swap everything in one step on the event loop (no await between the first and last assignment)."""
        state, settings, old = self.state, self.state.settings, self.state.service
        assert old is not None
        before = {e.name: e for e in state.registry.experts}
        after = {e.name: e for e in read.registry.experts}
        state.health.update(read.registry.experts)
        limiters: dict[str, ExpertLimiter] = {}
        for name, expert in after.items():
            capacity = expert.max_concurrency or settings.max_concurrency
            kept = old.dispatcher.limiters.get(name)
            limiters[name] = kept if kept is not None and kept.capacity == capacity else ExpertLimiter(
                name, capacity, settings.max_queue, settings.queue_timeout_s)
        dispatcher = Dispatcher(settings, old.dispatcher.client, state.metrics, state.health, limiters,
                                old.dispatcher.budget)
        if state.sessions is not None:
            state.sessions.configure(read.registry.router.session)
        for name in after.keys() - before.keys():
            if (task := self._retiring.pop(name, None)) is not None:
                task.cancel()
            start_expert_series(state.metrics, name)
        state.registry, state.router, state.keys = read.registry, read.router, read.keys
        state.access.authenticator.use_keys(read.keys)
        state.service = CompletionService(
            settings, state.selector(read.registry, read.router), dispatcher, state.metrics,
            state.streams, state.access, state.sessions,
            Resumer(read.registry, dispatcher, state.health, state.metrics),
        )
        router_changed = read.sources.artifact_sha256 != self.sources.artifact_sha256
        self.sources = read.sources
        for name in before.keys() - after.keys():
            self._retire(name, old.dispatcher.limiters.get(name))
        return {
            "status": "reloaded",
            "experts": list(after),
            "added": sorted(after.keys() - before.keys()),
            "removed": sorted(before.keys() - after.keys()),
            "changed": sorted(n for n in after.keys() & before.keys() if after[n] != before[n]),
            "router_reloaded": router_changed,
            **self.sources.describe(),
        }

    def _retire(self, name: str, limiter: ExpertLimiter | None) -> None:
        """Remove a dropped expert's series once its last request in flight has finished."""

        metrics = self.state.metrics

        def busy() -> bool:
            if limiter is not None and (limiter.active or limiter.waiting):
                return True
            return (metrics.registry.get_sample_value("coe_inflight_requests", {"expert": name}) or 0) > 0

        async def retire() -> None:
            while True:  # streams end at their own pace: poll, cheaply, until the last one has
                if not busy():
                    break
                await asyncio.sleep(0.1)
            remove_expert_series(metrics, name)
            self._retiring.pop(name, None)

        self._retiring[name] = asyncio.get_running_loop().create_task(retire())

    def request_from_signal(self) -> None:
        """SIGHUP: schedule a reload on the event loop; its outcome goes to the log."""
        loop = self.state.loop
        if loop is None or loop.is_closed():
            return

        async def run() -> None:
            try:
                await self.reload()
            except APIError as exc:
                log.error("reload on SIGHUP failed: %s", exc.message)

        def start() -> None:
            task = loop.create_task(run())
            self._signalled.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._signalled.discard)

        loop.call_soon_threadsafe(start)
