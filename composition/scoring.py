"""Exact scores per item kind: last number, chosen label, normalised match; code goes to `sandbox`."""

from __future__ import annotations

import re
import string

from composition.data import EvalItem

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def last_number(text: str) -> float | None:
    """The last number written in `text` (thousands separators allowed), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def score_numeric(output: str, answer: str) -> float:
    """1.0 when the output's last number equals the gold number (to 1e-6 relative), else 0.0."""
    got, gold = last_number(output), last_number(answer)
    if got is None or gold is None:
        return 0.0
    return 1.0 if abs(got - gold) <= 1e-6 * max(1.0, abs(gold)) else 0.0


def chosen_label(output: str, labels: tuple[str, ...]) -> str | None:
    """The label the output chose: a leading label, else 'answer is X', else the earliest label named."""
    text = output.strip()
    single_letters = all(len(label) == 1 for label in labels)
    flags = 0 if single_letters else re.IGNORECASE
    alternatives = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    for pattern in (
        rf"^\(?({alternatives})\b",
        rf"answer(?: is|:)\s*\(?({alternatives})\b",
    ):
        match = re.search(pattern, text, flags | (re.IGNORECASE if "answer" in pattern else 0))
        if match:
            return _canonical(match.group(1), labels)
    earliest = re.search(rf"\b({alternatives})\b", text, flags)
    return _canonical(earliest.group(1), labels) if earliest else None


def _canonical(found: str, labels: tuple[str, ...]) -> str | None:
    return next((label for label in labels if label.lower() == found.lower()), None)


def score_choice(output: str, answer: str, labels: tuple[str, ...]) -> float:
    """1.0 when the chosen label is the gold label (case-insensitive)."""
    chosen = chosen_label(output, labels or (answer,))
    return 1.0 if chosen is not None and chosen.lower() == answer.lower() else 0.0


def normalise(text: str) -> str:
    """Lower case, no punctuation or articles, single spaces."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def score_short(output: str, answer: str, aliases: tuple[str, ...] = ()) -> float:
    """1.0 when a gold string (or alias) equals, or is contained in, the normalised output."""
    got = normalise(output)
    for gold in (answer, *aliases):
        wanted = normalise(gold)
        if wanted and (got == wanted or f" {wanted} " in f" {got} "):
            return 1.0
    return 0.0


def extract_code(output: str) -> str:
    """The first fenced code block (Python preferred), else the whole output."""
    blocks = _FENCE.findall(output)
    for language, body in blocks:
        if language.lower() in ("python", "py", "python3"):
            return body
    return blocks[0][1] if blocks else output


def exact_score(item: EvalItem, output: str) -> float | None:
    """The exact score of a non-code item (None for `free` and `code_tests`, scored elsewhere)."""
    if item.kind == "numeric" and item.answer is not None:
        return score_numeric(output, item.answer)
    if item.kind == "choice" and item.answer is not None:
        return score_choice(output, item.answer, item.labels)
    if item.kind == "short" and item.answer is not None:
        return score_short(output, item.answer, item.aliases)
    return None
