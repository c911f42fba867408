"""How big each mode's run is: the full run (`make bench`, ~20 min) and `--quick` (~3 min plus a vLLM start)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BenchConfig:
    """Counts, caps and shapes of every mode."""

    quick: bool
    rounds: int
    # overhead: requests per target per round at each concurrency
    overhead_requests: dict[int, int]
    tokens: int = 32
    gap_s: float = 0.005
    load_cap_s: float = 60.0  # no single load runs longer than this
    capacity_rounds: int = 3
    capacity_duration_s: float = 10.0
    capacity_streams: int = 16
    capacity_tokens: int = 64
    routing_queries: int = 200
    routing_threads: int = 4
    routing_row_cap_s: float = 15.0
    peer_requests: dict[int, int] = field(default_factory=lambda: {1: 30, 16: 96, 64: 128})
    real_rounds: int = 3
    real_tokens: int = 64
    real_requests: dict[int, int] = field(default_factory=lambda: {1: 4, 16: 32})
    vllm_bench_prompts: int = 32
    profile_s: int = 8

    @classmethod
    def full(cls) -> BenchConfig:
        """`make bench`."""
        return cls(quick=False, rounds=5, overhead_requests={1: 20, 16: 64, 64: 128},
                   peer_requests={1: 30, 16: 96, 64: 128}, real_requests={1: 4, 16: 32})

    @classmethod
    def quick_run(cls) -> BenchConfig:
        """`--quick`: fewer rounds and requests; the same shapes, so figures are comparable but wider."""
        return cls(quick=True, rounds=3, overhead_requests={1: 8, 16: 32, 64: 64},
                   capacity_rounds=2, capacity_duration_s=4.0, routing_queries=40, routing_row_cap_s=4.0,
                   peer_requests={1: 10, 16: 32, 64: 64}, real_rounds=2, real_tokens=32,
                   real_requests={1: 2, 16: 16}, vllm_bench_prompts=16, profile_s=4)
