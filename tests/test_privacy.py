"""The privacy guard: detectors with their checks, typed placeholders, the block policy, the labelled set."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import APIError
from gateway.guarding import text_size
from gateway.privacy.detectors import card_ok, find_all, iban_ok, luhn_ok
from gateway.privacy.guard import PrivacyGuard
from gateway.privacy.measure import load_set, score

DATA = Path(__file__).parent / "data" / "privacy_labelled.jsonl"


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start:f.end]) for f in find_all(text)]


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert card_ok("4111 1111 1111 1111") and not card_ok("1234 5678 9012 3456")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_detectors_keep_real_ones_and_skip_lookalikes() -> None:
    assert kinds("card 4111 1111 1111 1111") == [("CARD", "4111 1111 1111 1111")]
    assert kinds("order 4111 1111 1111 1112") == []
    assert kinds("ssn 123-45-6789, never 666-12-3456 or 900-12-3456") == [("US_SSN", "123-45-6789")]
    assert kinds("v1.2.3.4 and version 10.0.0.1, host 10.0.0.2") == [("IP_ADDRESS", "10.0.0.2")]
    assert kinds("isbn 978-3-16-148410-0 on 2024-01-15, uuid 123e4567-e89b-12d3-a456-426614174000") == []
    assert kinds("ip6 2001:db8::1 and std::vector") == [("IP_ADDRESS", "2001:db8::1")]


def test_redact_uses_typed_placeholders_consistent_within_a_request() -> None:
    payload = {"model": "auto", "temperature": 0.1, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "mail a@x.com then b@y.org, cc a@x.com"},
        {"role": "user", "content": [{"type": "text", "text": "again a@x.com, card 4242 4242 4242 4242"}]},
    ]}
    result = PrivacyGuard().apply(payload, "redact")
    messages = result.payload["messages"]
    assert messages[1]["content"] == "mail <EMAIL_1> then <EMAIL_2>, cc <EMAIL_1>"
    assert messages[2]["content"][0]["text"] == "again <EMAIL_1>, card <CARD_1>"
    assert result.findings == {"EMAIL": 4, "CARD": 1} and result.changed
    assert result.payload["temperature"] == 0.1 and payload["messages"][1]["content"].startswith("mail a@x.com")


def test_completions_prompt_is_guarded() -> None:
    result = PrivacyGuard().apply({"model": "auto", "prompt": ["call +44 20 7946 0958"]}, "redact")
    assert result.payload["prompt"] == ["call <PHONE_1>"]


def test_allow_counts_without_changing() -> None:
    payload = {"messages": [{"role": "user", "content": "me@example.com"}]}
    result = PrivacyGuard().apply(payload, "allow")
    assert result.payload is payload and result.findings == {"EMAIL": 1} and not result.changed


def test_block_is_a_400_naming_the_kinds_not_the_values() -> None:
    payload = {"messages": [{"role": "user", "content": "me@example.com, IBAN DE89 3704 0044 0532 0130 00"}]}
    with pytest.raises(APIError) as caught:
        PrivacyGuard().apply(payload, "block")
    body = caught.value.body()["error"]
    assert caught.value.status == 400 and body["code"] == "personal_data_blocked"
    assert "EMAIL" in body["message"] and "IBAN" in body["message"] and "example.com" not in body["message"]
    assert PrivacyGuard().apply({"messages": [{"role": "user", "content": "hi"}]}, "block").findings == {}


def test_labelled_set_scores_hold() -> None:
    report = score(load_set(DATA))
    assert report["negatives"] >= 40
    assert report["precision"] >= 0.9 and report["recall"] >= 0.88, report["errors"]
    assert report["per_kind"]["CARD"]["precision"] == 1.0


def test_responses_input_and_instructions_and_messages_system_are_guarded() -> None:
    responses = {"model": "auto", "instructions": "reply to a@x.com", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "my card 4242 4242 4242 4242"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "kept"}]}
    result = PrivacyGuard().apply(responses, "redact")
    assert result.payload["instructions"] == "reply to <EMAIL_1>"
    assert result.payload["input"][0]["content"][0]["text"] == "my card <CARD_1>"
    assert result.payload["input"][1] == responses["input"][1]
    assert PrivacyGuard().apply({"input": "mail b@y.org"}, "redact").payload["input"] == "mail <EMAIL_1>"
    messages = {"system": [{"type": "text", "text": "user is c@z.net"}],
                "messages": [{"role": "user", "content": "hi"}]}
    assert PrivacyGuard().apply(messages, "redact").payload["system"][0]["text"] == "user is <EMAIL_1>"


def test_every_conversation_of_a_batch_is_guarded() -> None:
    batch = {"model": "auto", "messages": [[{"role": "user", "content": "mail a@x.com"}],
                                           [{"role": "user", "content": [{"type": "text", "text": "b@y.org"}]}]]}
    result = PrivacyGuard().apply(batch, "redact")
    assert result.payload["messages"] == [[{"role": "user", "content": "mail <EMAIL_1>"}],
                                          [{"role": "user", "content": [{"type": "text", "text": "<EMAIL_2>"}]}]]
    assert text_size(batch) == len("mail a@x.com") + len("b@y.org")
