"""Side-by-side measurement: every target at every concurrency, interleaved round by round in one run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bench.loadgen import LoadResult, LoadSpec, run_load, warm_up
from bench.procs import ServerProcess, time_wait_sockets
from bench.stats import Spread, median, percentile

Say = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """One path to the engine: its base URL, the model name to ask for, the process whose CPU is counted."""

    name: str
    base_url: str
    model: str
    server: ServerProcess | None = None
    headers: dict[str, str] = field(default_factory=dict)
    upstream_port: int | None = None  # count the connections the target closes towards this port


@dataclass
class Measurement:
    """One target at one concurrency in one round."""

    target: str
    streams: int
    round: int
    result: LoadResult
    cpu_s: float | None
    upstream_closes: int | None = None
    client_cpu_s: float | None = None  # the load generator's own CPU (this process), to see what it takes


async def run_rounds(
    targets: Sequence[Target],
    streams_levels: Sequence[int],
    rounds: int,
    spec_for: Callable[[Target, int], LoadSpec],
    say: Say,
) -> list[Measurement]:
    """Each round runs every concurrency, and within it every target, starting from a rotating target."""
    for target in targets:
        await warm_up(spec_for(target, 1))
    measurements: list[Measurement] = []
    for index in range(rounds):
        for streams in streams_levels:
            order = [targets[(index + k) % len(targets)] for k in range(len(targets))]
            for target in order:
                spec = spec_for(target, streams)
                before = target.server.cpu_seconds() if target.server else None
                closed_before = time_wait_sockets(target.upstream_port) if target.upstream_port else set()
                client_before = time.process_time()
                result = await run_load(spec)
                client_cpu = time.process_time() - client_before
                cpu = target.server.cpu_seconds() - before if target.server and before is not None else None
                closes = (len(time_wait_sockets(target.upstream_port) - closed_before)
                          if target.upstream_port else None)
                measurements.append(Measurement(target.name, streams, index, result, cpu, closes, client_cpu))
            say(f"  round {index + 1}/{rounds}, {streams} streams: "
                + ", ".join(f"{m.target} {_ttft_ms(m):.1f} ms" for m in measurements[-len(targets):]))
    return measurements


def _ttft_ms(m: Measurement) -> float:
    return 1000 * median([s.ttft_s for s in m.result.ok if s.ttft_s is not None])


def with_streams(spec: LoadSpec, streams: int, requests: int) -> LoadSpec:
    """A copy of a spec at another concurrency and request count."""
    return replace(spec, streams=streams, requests=requests)


class Comparison:
    """Figures over rounds for one target against a baseline, from the measurements of one run."""

    def __init__(self, measurements: Sequence[Measurement]) -> None:
        self._by_key = {(m.target, m.streams, m.round): m for m in measurements}
        self.rounds = sorted({m.round for m in measurements})

    def row(self, name: str, streams: int, baseline: str = "direct") -> list[str]:
        """The cells every side-by-side table starts with: streams, path, TTFT, added TTFT, ratios, CPU."""
        if name == baseline:
            return [str(streams), name, self.ttft_ms(name, streams).format(2), "–", "–", "1", "1",
                    self.cpu_ms_per_request(name, streams).format(2)]
        return [
            str(streams), name, self.ttft_ms(name, streams).format(2),
            self.added_ttft_ms(name, baseline, streams).format(2),
            self.added_ttft_ms(name, baseline, streams, q=99).format(2),
            self.e2e_ratio(name, baseline, streams).format(3),
            self.throughput_ratio(name, baseline, streams).format(3),
            self.cpu_ms_per_request(name, streams).format(2),
        ]

    def errors_cell(self, name: str, streams: int) -> str:
        """`failed/total` for one path."""
        failed, total = self.errors(name, streams)
        return f"{failed}/{total}"

    def _pairs(self, target: str, baseline: str, streams: int) -> list[tuple[Measurement, Measurement]]:
        pairs = []
        for r in self.rounds:
            a, b = self._by_key.get((target, streams, r)), self._by_key.get((baseline, streams, r))
            if a is not None and b is not None:
                pairs.append((a, b))
        return pairs

    def ttft_ms(self, target: str, streams: int, q: float = 50.0) -> Spread:
        """The target's own TTFT percentile, per round."""
        return Spread.of([1000 * percentile(_ttfts(m), q) for r in self.rounds
                          if (m := self._by_key.get((target, streams, r))) is not None])

    def added_ttft_ms(self, target: str, baseline: str, streams: int, q: float = 50.0) -> Spread:
        """Per round: the target's TTFT percentile minus the baseline's, in ms."""
        return Spread.of([1000 * (percentile(_ttfts(a), q) - percentile(_ttfts(b), q))
                          for a, b in self._pairs(target, baseline, streams)])

    def e2e_ratio(self, target: str, baseline: str, streams: int) -> Spread:
        """Per round: median end-to-end time of the target over the baseline's."""
        return Spread.of([median(_e2es(a)) / median(_e2es(b)) for a, b in self._pairs(target, baseline, streams)])

    def throughput_ratio(self, target: str, baseline: str, streams: int) -> Spread:
        """Per round: tokens/s of the target over the baseline's."""
        return Spread.of([a.result.tokens_per_s() / b.result.tokens_per_s()
                          for a, b in self._pairs(target, baseline, streams) if b.result.tokens_per_s() > 0])

    def tokens_per_s(self, target: str, streams: int) -> Spread:
        """Per round: the target's completion tokens per second."""
        return Spread.of([m.result.tokens_per_s() for r in self.rounds
                          if (m := self._by_key.get((target, streams, r))) is not None])

    def cpu_ms_per_request(self, target: str, streams: int) -> Spread:
        """Per round: CPU time of the target's process over the requests it served, in ms."""
        return Spread.of([1000 * m.cpu_s / len(m.result.samples) for r in self.rounds
                          if (m := self._by_key.get((target, streams, r))) is not None
                          and m.cpu_s is not None and m.result.samples])

    def client_cpu_ms_per_request(self, target: str, streams: int) -> Spread:
        """Per round: the load generator's CPU time over the requests it sent to the target, in ms."""
        return Spread.of([1000 * m.client_cpu_s / len(m.result.samples) for r in self.rounds
                          if (m := self._by_key.get((target, streams, r))) is not None
                          and m.client_cpu_s is not None and m.result.samples])

    def upstream_closes_per_request(self, target: str, streams: int) -> Spread:
        """Per round: connections to the engine the target closed, per request (0 when it pools them)."""
        return Spread.of([m.upstream_closes / len(m.result.samples) for r in self.rounds
                          if (m := self._by_key.get((target, streams, r))) is not None
                          and m.upstream_closes is not None and m.result.samples])

    def errors(self, target: str, streams: int) -> tuple[int, int]:
        """Failed and total requests of the target at this concurrency, over all rounds."""
        ms = [m for (t, s, _), m in self._by_key.items() if t == target and s == streams]
        return sum(m.result.errors for m in ms), sum(len(m.result.samples) for m in ms)


def _ttfts(m: Measurement) -> list[float]:
    return [s.ttft_s for s in m.result.ok if s.ttft_s is not None]


def _e2es(m: Measurement) -> list[float]:
    return [s.e2e_s for s in m.result.ok]
