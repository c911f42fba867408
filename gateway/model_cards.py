"""`GET /v1/models`: each expert's card, carrying what its engine says of the model it serves.

vLLM's card has `root`, `parent`, `max_model_len` and `permission` beside OpenAI's four fields; clients size their
prompts by `max_model_len` and tell a LoRA adapter by `parent`, so the gateway keeps them from the health probe's
answer (it asks every engine's `/models` anyway) instead of hiding them.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.registry import ROUTED_MODEL, ExpertConfig

# The gateway's own: the name a client sends, and when and by whom it is served.
OWN_FIELDS = frozenset({"id", "object", "created", "owned_by"})


class ModelCards:
    """The engines' model cards, learnt from their `/models` answers, keyed by expert and served model."""

    def __init__(self) -> None:
        self._engine: dict[tuple[str, str], dict[str, Any]] = {}

    def observe(self, expert: ExpertConfig, body: bytes) -> None:
        """Keep the engine's card for `expert.model` from one `/models` answer; a malformed answer changes nothing."""
        try:
            entries = json.loads(body)["data"]
            entry = next(e for e in entries if isinstance(e, dict) and e.get("id") == expert.model)
        except (ValueError, KeyError, TypeError, StopIteration):
            return
        self._engine[(expert.name, expert.model)] = {k: v for k, v in entry.items() if k not in OWN_FIELDS}

    def engine_fields(self, expert: ExpertConfig) -> dict[str, Any]:
        """What the engine said of the expert's model (empty before its first probe answered)."""
        return self._engine.get((expert.name, expert.model), {})

    def card(self, expert: ExpertConfig, created: int) -> dict[str, Any]:
        """One expert's card: the gateway's fields, the engine's, then the expert's description and categories."""
        return {"id": expert.name, "object": "model", "created": created, "owned_by": "coe",
                **self.engine_fields(expert), "description": expert.description, "categories": expert.categories}

    def routed_card(self, experts: list[ExpertConfig], created: int) -> dict[str, Any]:
        """The `auto` card; its `max_model_len` is the smallest expert's, since any of them may answer."""
        card: dict[str, Any] = {"id": ROUTED_MODEL, "object": "model", "created": created, "owned_by": "coe"}
        lengths = [self.engine_fields(e).get("max_model_len") for e in experts]
        if experts and all(isinstance(n, int) for n in lengths):
            card["max_model_len"] = min(lengths)  # type: ignore[type-var]
        card["description"] = "Routed: the router picks the expert for each request"
        return card
