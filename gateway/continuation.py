"""What a continuation sends: whether a request can be continued, and the request that continues a partial answer."""

from __future__ import annotations

from dataclasses import replace

from gateway.protocol import ChatCompletionRequest, CompletionRequest, ParsedRequest

# Parameters whose answer a continuation cannot reproduce: several choices, per-token logprobs, tool calls,
# grammars (they would restart at the partial text), the prompt echoed back, usage on every chunk.
_BLOCKING_KEYS = ("tools", "functions", "response_format", "guided_json", "guided_regex", "guided_choice",
                  "guided_grammar", "structured_outputs", "echo", "suffix", "continue_final_message")


def resume_blocker(request: ParsedRequest) -> str | None:
    """Why this streamed request cannot be resumed mid-answer (None: it can)."""
    p = request.payload
    if p.get("n") not in (None, 1) or p.get("best_of") not in (None, 1):
        return "n"
    if p.get("logprobs") not in (None, False) or p.get("top_logprobs") not in (None, 0):
        return "logprobs"
    for key in _BLOCKING_KEYS:
        if p.get(key) not in (None, False, [], {"type": "text"}):
            return key
    if (p.get("stream_options") or {}).get("continuous_usage_stats"):
        return "continuous_usage_stats"
    if isinstance(request, CompletionRequest):
        prompt = p.get("prompt")
        one_text = isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str)
        if not (isinstance(prompt, str) or one_text):
            return "prompt"  # token ids or several prompts: no text to append to
    elif not isinstance(request, ChatCompletionRequest) or not isinstance(p.get("messages"), list):
        return "messages"
    return None


def continuation(request: ParsedRequest, partial: str, used_tokens: int) -> ParsedRequest | None:
    """The request that continues `partial` with the tokens left (None when none are left)."""
    payload = dict(request.payload)
    for key in ("max_tokens", "max_completion_tokens"):
        limit = payload.get(key)
        if isinstance(limit, int):
            if limit - used_tokens < 1:
                return None
            payload[key] = limit - used_tokens
    if partial and isinstance(request, ChatCompletionRequest):
        payload["messages"] = [*payload["messages"], {"role": "assistant", "content": partial}]
        payload["continue_final_message"], payload["add_generation_prompt"] = True, False
    elif partial:
        prompt = payload["prompt"]
        payload["prompt"] = prompt + partial if isinstance(prompt, str) else [prompt[0] + partial]
    return replace(request, payload=payload)
