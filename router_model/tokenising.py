"""MiniLM's word-piece tokenizer through the Rust `tokenizers` package (no transformers, no torch)."""

from __future__ import annotations

from typing import Any

from router_model.embedders import minilm_model_dir


class WordPieces:
    """Text to MiniLM word-piece ids, truncated to `max_tokens` (special tokens included)."""

    def __init__(self, max_tokens: int) -> None:
        self._max_tokens = max_tokens
        self._tokenizer: Any = None

    def _loaded(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
            # Set once here: encode() itself then mutates nothing, so threads may share the tokenizer.
            tokenizer.enable_truncation(self._max_tokens)
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        return self._tokenizer

    def with_specials(self, text: str) -> list[int]:
        """[CLS] pieces [SEP], as the transformer reads them."""
        ids: list[int] = self._loaded().encode(_valid(text)).ids
        return ids

    def pieces(self, text: str) -> list[int]:
        """The word pieces alone (the static embedding averages these); never empty."""
        ids = self.with_specials(text)[1:-1]
        return ids or [self._loaded().token_to_id("[UNK]")]

    def pieces_batch(self, texts: list[str]) -> list[list[int]]:
        """`pieces` for many texts at once (the Rust tokenizer parallelises)."""
        unknown = self._loaded().token_to_id("[UNK]")
        return [encoding.ids[1:-1] or [unknown] for encoding in self._loaded().encode_batch([_valid(t) for t in texts])]


def _valid(text: str) -> str:
    """Valid UTF-8: the Rust tokenizer refuses lone surrogates, which JSON can carry."""
    return text.encode("utf-8", "replace").decode("utf-8")
