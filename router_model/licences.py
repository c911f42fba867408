"""Licences of the known training sources, and which of them a shipped artifact may use."""

from __future__ import annotations

# Licences that allow a trained artifact to ship with the project (no non-commercial or no-derivatives terms).
PERMISSIVE = frozenset({"MIT", "Apache-2.0", "CC BY 4.0", "CC BY-SA 3.0", "CC BY-SA 4.0", "BSD-3-Clause"})

# The router data sets this project knows by name; a source missing here is recorded as "unknown".
KNOWN_SOURCE_LICENCES: dict[str, str] = {
    "coe_written": "Apache-2.0",  # prompts this project wrote itself (router_model/data/)
    "coe_written_long": "Apache-2.0",  # the same, as long multi-sentence posts (router_model/data/long_*.jsonl)
    "gsm8k_train": "MIT",
    "math_test": "MIT",
    "humaneval": "MIT",
    "mbppplus": "CC BY-NC 4.0",
    "nl2bash": "MIT",
    "medmcqa": "MIT",
    "medquad": "CC BY 4.0",
    "pubmedqa": "MIT",
    "legalbench_tasks": "CC BY 4.0",
    "tatqa": "MIT",
    "mmlu": "MIT",
    "openbookqa": "Apache-2.0",
    "nq_open": "CC BY-SA 3.0",
    "truthfulqa": "Apache-2.0",
    "selfinstruct_user": "Apache-2.0",
    "alpacaeval": "CC BY-NC 4.0",
    "cmmlu": "CC BY-NC-SA 4.0",
    "cmath": "MIT",
    "mmath": "MIT",
}


def licence_of(source: str) -> str:
    """The licence of a named source, or "unknown"."""
    return KNOWN_SOURCE_LICENCES.get(source, "unknown")


def is_permissive(licence: str) -> bool:
    """Whether an artifact trained on text under this licence may ship."""
    return licence in PERMISSIVE
