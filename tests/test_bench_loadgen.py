"""The benchmark's load generator: loopback only, bounded in count and time, honest about failures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench.loadgen import LoadResult, LoadSpec, RequestSample, run_load
from bench.loopback import NotLoopbackError, require_loopback
from bench.modes.overhead import readings
from bench.rounds import Comparison, Measurement, Target, run_rounds
from bench.stats import Spread, percentile
from coe_testing.fake_engine import FakeBehaviour, FakeEngine
from coe_testing.servers import ServerThread


@pytest.fixture
def engine() -> Iterator[tuple[FakeEngine, str]]:
    """A fake engine on loopback, 4 tokens per answer."""
    fake = FakeEngine("m", FakeBehaviour(tokens=4))
    with ServerThread(fake, lifespan="off") as server:
        yield fake, f"{server.url}/v1"


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/v1", "http://127.8.9.10:80", "http://localhost:5/v1",
                                 "http://[::1]:8000/v1"])
def test_loopback_urls_are_accepted(url: str) -> None:
    assert require_loopback(url) == url


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000/v1", "https://example.com/v1", "http://0.0.0.0:80",
                                 "ftp://127.0.0.1/x", "http://localhost.example.com/v1"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(NotLoopbackError):
        require_loopback(url)


def test_a_spec_for_a_remote_url_cannot_be_built() -> None:
    with pytest.raises(NotLoopbackError):
        LoadSpec("http://192.168.1.2:8000/v1", "m", 1, 1, 1.0)


def test_a_spec_needs_positive_caps() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoadSpec("http://127.0.0.1:1/v1", "m", 1, 0, 1.0)


def test_the_request_count_is_the_cap(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    result = asyncio.run(run_load(LoadSpec(url, "m", streams=3, requests=7, max_duration_s=30.0)))
    assert len(result.samples) == 7 and fake.stats.requests == 7
    assert result.errors == 0 and not result.stopped_by_duration
    assert all(s.ttft_s is not None and s.ttft_s <= s.e2e_s for s in result.samples)
    assert {s.chunks for s in result.samples} == {4}
    assert {s.completion_tokens for s in result.samples} == {4}
    assert result.tokens_per_s() > 0


def test_the_duration_is_the_cap(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    fake.behaviour.gap_s = 0.1  # 0.3 s per answer
    result = asyncio.run(run_load(LoadSpec(url, "m", streams=2, requests=1000, max_duration_s=0.5)))
    assert result.stopped_by_duration
    assert 2 <= len(result.samples) < 20


def test_failures_are_counted_not_hidden(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    fake.behaviour.fault = "status_500"
    result = asyncio.run(run_load(LoadSpec(url, "m", streams=2, requests=4, max_duration_s=30.0)))
    assert result.errors == 4 and {s.error for s in result.samples} == {"HTTP 500"}


def test_an_error_event_mid_stream_is_a_failure(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    fake.behaviour.fault = "error_event"
    result = asyncio.run(run_load(LoadSpec(url, "m", streams=1, requests=2, max_duration_s=30.0)))
    assert [s.error for s in result.samples] == ["error event", "error event"]


def test_percentiles_interpolate() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0], 100) == 3.0


def test_a_spread_leaves_out_rounds_without_data() -> None:
    spread = Spread.of([3.0, float("nan"), 1.0, 2.0])
    assert (spread.median, spread.low, spread.high, spread.rounds) == (2.0, 1.0, 3.0, 3)
    assert spread.format(1, " ms") == "2.0 ms [1.0 – 3.0]"
    assert Spread.of([]).format() == "n/a"


def _measurement(target: str, round_: int, ttfts: list[float], cpu_s: float | None = None) -> Measurement:
    samples = [RequestSample(True, t, t + 1.0, 10, 10) for t in ttfts]
    return Measurement(target, 1, round_, LoadResult(samples, wall_s=2.0), cpu_s)


def test_added_ttft_is_taken_round_by_round() -> None:
    comparison = Comparison([
        _measurement("direct", 0, [0.010, 0.010]), _measurement("gw", 0, [0.012, 0.012], cpu_s=0.004),
        _measurement("direct", 1, [0.020, 0.020]), _measurement("gw", 1, [0.024, 0.024], cpu_s=0.006),
    ])
    added = comparison.added_ttft_ms("gw", "direct", 1)
    assert added.low == pytest.approx(2.0) and added.high == pytest.approx(4.0)
    assert comparison.cpu_ms_per_request("gw", 1).median == pytest.approx(2.5)
    assert comparison.throughput_ratio("gw", "direct", 1).median == pytest.approx(1.0)
    assert comparison.errors("gw", 1) == (0, 4)


def test_side_by_side_rows_share_one_shape() -> None:
    comparison = Comparison([
        _measurement("direct", 0, [0.010, 0.010]), _measurement("gw", 0, [0.012, 0.012], cpu_s=0.004),
    ])
    direct, gateway = comparison.row("direct", 1), comparison.row("gw", 1)
    assert len(direct) == len(gateway) == 8
    assert direct[:2] == ["1", "direct"] and direct[3:7] == ["–", "–", "1", "1"]
    assert gateway[1] == "gw" and gateway[3].startswith("2.00")
    assert comparison.errors_cell("gw", 1) == "0/2"


def test_the_load_generators_own_cpu_is_reported_beside_the_servers() -> None:
    def measured(target: str, streams: int, client_cpu_s: float) -> Measurement:
        samples = [RequestSample(True, 0.01, 1.0, 10, 10) for _ in range(4)]
        return Measurement(target, streams, 0, LoadResult(samples, wall_s=2.0), 0.004, None, client_cpu_s)

    comparison = Comparison([measured("direct", 1, 0.008), measured("pinned", 1, 0.012),
                             measured("direct", 16, 0.020), measured("pinned", 16, 0.024)])
    assert comparison.client_cpu_ms_per_request("pinned", 1).median == pytest.approx(3.0)
    note = readings(comparison, [1, 16])[-1]
    assert "2.00 / 3.00 ms at 1" in note and "5.00 / 6.00 ms at 16" in note


def test_each_measured_load_records_what_the_load_generator_spent(engine: tuple[FakeEngine, str]) -> None:
    _, url = engine
    target = Target("direct", url, "m")
    spec = LoadSpec(url, "m", streams=2, requests=6, max_duration_s=30)
    measurements = asyncio.run(run_rounds([target], [2], 1, lambda _target, _streams: spec, lambda _line: None))
    assert len(measurements) == 1 and measurements[0].client_cpu_s is not None
    assert measurements[0].client_cpu_s > 0
