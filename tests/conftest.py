"""Shared fixtures live in `tests/fixtures_*.py`; this file only registers them."""

pytest_plugins: list[str] = [
    "tests.fixtures_engines", "tests.fixtures_gateway", "tests.fixtures_replicas", "tests.fixtures_router",
    "tests.fixtures_security",
]
