"""The guard: apply a role's privacy policy (allow, redact, block) to the text a request would send out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.errors import APIError
from gateway.privacy.detectors import DETECTORS, Detector, find_all

Policy = Literal["allow", "redact", "block"]


@dataclass
class Redactor:
    """Typed placeholders, one per distinct value, stable within one request (`<EMAIL_1>` twice for one address)."""

    placeholders: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self.placeholders:
            self.counts[kind] += 1
            self.placeholders[key] = f"<{kind}_{self.counts[kind]}>"
        return self.placeholders[key]


class PersonalDataBlocked(APIError):
    """The 400 for a `block` policy, carrying the kinds and counts found (never the values) for the audit."""

    def __init__(self, findings: dict[str, int], param: str) -> None:
        kinds = ", ".join(sorted(findings))
        super().__init__(400, f"The request contains personal data your role may not send: {kinds}. Allowed: "
                         "the same request with them removed or masked, or a role whose policy is 'allow' or 'redact'.",
                         param=param, code="personal_data_blocked")
        self.findings = findings


@dataclass
class GuardResult:
    """What the guard found (kinds and counts, never values) and the payload to send on."""

    payload: dict[str, Any]
    findings: dict[str, int]
    changed: bool


class PrivacyGuard:
    """Scans the user-supplied text of a chat or completions payload."""

    def __init__(self, detectors: tuple[Detector, ...] = DETECTORS) -> None:
        self._detectors = detectors

    def scan_text(self, text: str, redactor: Redactor | None, found: Counter[str]) -> str:
        """Count findings in `text`; return it with placeholders when a redactor is given."""
        findings = find_all(text, self._detectors)
        for finding in findings:
            found[finding.kind] += 1
        if redactor is None or not findings:
            return text
        pieces, cursor = [], 0
        for finding in findings:
            pieces += [text[cursor:finding.start], redactor.placeholder(finding.kind, text[finding.start:finding.end])]
            cursor = finding.end
        pieces.append(text[cursor:])
        return "".join(pieces)

    def apply(self, payload: dict[str, Any], policy: Policy) -> GuardResult:
        """Scan the payload; for `redact` rewrite it, for `block` raise a 400 naming the kinds found."""
        if policy == "allow":
            found: Counter[str] = Counter()
            self._walk(payload, None, found)
            return GuardResult(payload, dict(found), False)
        redactor = Redactor() if policy == "redact" else None
        found = Counter()
        rewritten = self._walk(payload, redactor, found)
        if policy == "block" and found:
            param = next((key for key in ("messages", "input") if key in payload), "prompt")
            raise PersonalDataBlocked(dict(found), param)
        return GuardResult(rewritten, dict(found), bool(found) and redactor is not None)

    def _walk(self, payload: dict[str, Any], redactor: Redactor | None, found: Counter[str]) -> dict[str, Any]:
        out = dict(payload)
        if isinstance(payload.get("messages"), list):
            out["messages"] = [self._message(m, redactor, found) for m in payload["messages"]]
        prompt = payload.get("prompt")
        if isinstance(prompt, str):
            out["prompt"] = self.scan_text(prompt, redactor, found)
        elif isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            out["prompt"] = [self.scan_text(p, redactor, found) for p in prompt]
        # The Responses API's `input` (text or messages) and `instructions`; the Messages API's `system`.
        for key in ("input", "instructions", "system"):
            value = payload.get(key)
            if isinstance(value, str):
                out[key] = self.scan_text(value, redactor, found)
            elif isinstance(value, list):
                out[key] = [self._message(m, redactor, found) if isinstance(m, dict) and "role" in m
                            else self._part(m, redactor, found) for m in value]
        return out

    def _part(self, part: Any, redactor: Redactor | None, found: Counter[str]) -> Any:
        """A content part with text (a system block, an input item without a role) scanned."""
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            return {**part, "text": self.scan_text(part["text"], redactor, found)}
        return part

    def _message(self, message: Any, redactor: Redactor | None, found: Counter[str]) -> Any:
        if isinstance(message, list):  # one conversation of vLLM's `/v1/chat/completions/batch`
            return [self._message(m, redactor, found) for m in message]
        if not isinstance(message, dict):
            return message
        content = message.get("content")
        if isinstance(content, str):
            return {**message, "content": self.scan_text(content, redactor, found)}
        if isinstance(content, list):
            return {**message, "content": [self._part(p, redactor, found) for p in content]}
        return message
