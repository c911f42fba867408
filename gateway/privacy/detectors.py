"""Detectors for personal data: a pattern to find candidates and a check (checksum, range) to keep real ones."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: its kind and where it sits in the text."""

    kind: str
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# Issuer prefixes (Visa, Mastercard old and 2-series, Amex, Discover, JCB, Diners): a Luhn-valid order number
# rarely starts with one of these and has the right length.
_CARD_PREFIX = re.compile(r"^(4\d{12}(\d{3}){0,2}|5[1-5]\d{14}|2(2[2-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}|3[47]\d{13}"
                          r"|6(011|5\d\d)\d{12,15}|35(2[89]|[3-8]\d)\d{12,15}|3(0[0-5]|[68]\d)\d{11})$")


def card_ok(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return bool(_CARD_PREFIX.match(digits)) and luhn_ok(digits)


def iban_ok(candidate: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, remainder mod 97 is 1."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def phone_ok(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return 8 <= len(digits) <= 15 if candidate.startswith("+") else 10 <= len(digits) <= 11


def ipv4_ok(candidate: str, text: str, start: int) -> bool:
    # "version 1.2.3.4" and "v10.0.0.1" are version strings, not addresses.
    before = text[max(0, start - 12):start].lower()
    if re.search(r"(v|version|ver\.?|release|build)\s*$", before):
        return False
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def ipv6_ok(candidate: str) -> bool:
    groups = [g for g in candidate.split(":") if g]
    if len(groups) < 2 or (len(groups) < 8 and "::" not in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


Check = Callable[[str, str, int], bool]


@dataclass(frozen=True)
class Detector:
    """A named kind: a candidate pattern and the check a candidate must pass."""

    kind: str
    pattern: re.Pattern[str]
    check: Check

    def find(self, text: str) -> Iterator[Finding]:
        for match in self.pattern.finditer(text):
            value = match.group(0)
            if self.check(value, text, match.start()):
                yield Finding(self.kind, match.start(), match.end())


def _always(value: str, text: str, start: int) -> bool:
    return True


DETECTORS: tuple[Detector, ...] = (
    Detector("EMAIL", re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*"
                                 r"\.[A-Za-z]{2,24}\b"), _always),
    Detector("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
             lambda v, t, s: iban_ok(v)),
    Detector("CARD", re.compile(r"(?<![\d-])\d{4}(?:[ -]?\d{2,4}){2,4}(?:[ -]?\d{1,3})?(?![\d-])"),
             lambda v, t, s: card_ok(v)),
    # US Social Security numbers, dashed: area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
    Detector("US_SSN", re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"), _always),
    # UK National Insurance numbers: the HMRC prefix rules (no D F I Q U V, no O second, not BG GB NK KN TN NT ZZ).
    Detector("UK_NINO", re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
                                   r" ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"), _always),
    Detector("PHONE", re.compile(r"(?<![\w+-])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
                                 r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[ .-]\d{3}[ .-]\d{4}"
                                 r"|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4})(?![\w-])"),
             lambda v, t, s: phone_ok(v)),
    Detector("IP_ADDRESS", re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.]*\d)"), ipv4_ok),
    Detector("IP_ADDRESS", re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"),
             lambda v, t, s: ipv6_ok(v)),
)


def find_all(text: str, detectors: tuple[Detector, ...] = DETECTORS) -> list[Finding]:
    """Every finding, earlier detectors winning an overlap (an IBAN's digits are not also a card)."""
    taken: list[Finding] = []
    for detector in detectors:
        for finding in detector.find(text):
            if not any(finding.start < t.end and t.start < finding.end for t in taken):
                taken.append(finding)
    return sorted(taken, key=lambda f: f.start)
