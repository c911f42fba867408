"""Test doubles for what is slow or unavailable in unit tests: the trained router."""

from __future__ import annotations

from router_model.query_router import RoutingDecision

CATEGORIES = ("code", "math", "medical", "legal", "finance", "science", "general", "multilingual")
_KEYWORDS = {
    "code": ("python", "function", "code", "bug", "javascript"),
    "math": ("integral", "solve", "equation", "sum of", "derivative"),
    "medical": ("dizzy", "symptom", "doctor"),
}


class KeywordRouter:
    """Routes on keywords; 'unsure' in the text gives a low-confidence answer."""

    categories = CATEGORIES

    def __init__(self) -> None:
        self.calls: list[str] = []

    def route(self, text: str) -> RoutingDecision:
        self.calls.append(text)
        lowered = text.lower()
        best = next((c for c, words in _KEYWORDS.items() if any(w in lowered for w in words)), "general")
        confidence = 0.2 if "unsure" in lowered else 0.9
        rest = (1 - confidence) / (len(CATEGORIES) - 1)
        ranked = ((best, confidence), *((c, rest) for c in CATEGORIES if c != best))
        return RoutingDecision(best, confidence, ranked)


class GradedKeywordRouter(KeywordRouter):
    """Like KeywordRouter, but as sure as the text is clear: no keyword 0.45 (general), one 0.7, more 0.95."""

    def route(self, text: str) -> RoutingDecision:
        self.calls.append(text)
        lowered = text.lower()
        hits = {c: sum(w in lowered for w in words) for c, words in _KEYWORDS.items()}
        best = max(hits, key=lambda c: hits[c]) if any(hits.values()) else "general"
        confidence = {0: 0.45, 1: 0.7}.get(hits.get(best, 0), 0.95)
        rest = (1 - confidence) / (len(CATEGORIES) - 1)
        ranked = ((best, confidence), *((c, rest) for c in CATEGORIES if c != best))
        return RoutingDecision(best, confidence, ranked)
