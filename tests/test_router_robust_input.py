"""Any input routes: huge, binary, emoji-only, empty, surrogate-laden or in many languages, in bounded time."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_model.embedders import HashingEmbedder
from router_model.query_router import MAX_CHARS, QueryRouter, bounded_text
from router_model.training import TrainConfig, train_router, write_router
from tests.fixtures_router import TINY_PROMPTS, write_prompts

LANGUAGES = [
    "¿cómo invierto mis ahorros?", "comment déclarer mes impôts", "wie kündige ich meinen mietvertrag",
    "come si calcola la derivata", "como faço um bolo de cenoura", "hoe laat is het in tokio",
    "jak napisać funkcję w pythonie", "как лечить простуду", "як подати до суду", "nasıl kod yazılır",
    "كيف أتعلم البرمجة", "איך לחשב ריבית", "कैसे बुखार कम करें", "কিভাবে টাকা জমাব", "ஒரு கவிதை எழுது",
    "如何学习编程", "如何學習數學", "プログラミングを学ぶには", "코드를 어떻게 고치나요", "làm sao để học toán",
    "วิธีทำอาหารไทย", "bagaimana cara belajar", "paano magluto ng adobo", "jinsi ya kupika wali",
    "πώς να μάθω προγραμματισμό", "hur deklarerar jag skatt", "hvordan lærer jeg kode", "miten opin koodaamaan",
    "hogyan tanuljak programozni", "cum învăț matematică",
]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> QueryRouter:
    folder = tmp_path_factory.mktemp("robust")
    data = write_prompts(folder / "tiny.jsonl", TINY_PROMPTS)
    config = TrainConfig(data=[data], out=folder / "artifact", classifier="knn+logreg")
    write_router(train_router(config, HashingEmbedder(512), log=lambda _line: None), folder / "artifact")
    return QueryRouter.load(folder / "artifact")


def assert_valid(router: QueryRouter, text: str) -> None:
    started = time.perf_counter()
    decision = router.route(text)
    assert time.perf_counter() - started < 1.0
    assert decision.category in router.categories
    assert 0.0 <= decision.confidence <= 1.0
    assert sum(p for _, p in decision.ranked) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \n\t ",
        "x" * 100_000,
        "how do i fix this python error " * 4000,
        bytes(range(256)).decode("latin-1") * 50,
        "\x00\x01\x02\ufffd\ufeff",
        "😀🔥💯🙏" * 200,
        "\ud800 lone surrogate \udfff",
        *LANGUAGES,
    ],
    ids=lambda text: repr(text[:12]),
)
def test_awkward_inputs_route(router: QueryRouter, text: str) -> None:
    assert_valid(router, text)


def test_thirty_languages(router: QueryRouter) -> None:
    assert len(set(LANGUAGES)) == 30
    for decision, text in zip(router.route_batch(LANGUAGES), LANGUAGES, strict=True):
        assert decision.category in router.categories, text


def test_long_input_costs_what_its_start_costs(router: QueryRouter) -> None:
    assert len(bounded_text("y" * 100_000)) == MAX_CHARS
    assert router.route("word " * 50_000) == router.route(("word " * 50_000)[:MAX_CHARS])


def test_non_strings_route_as_text(router: QueryRouter) -> None:
    assert_valid(router, None)  # type: ignore[arg-type]
    assert bounded_text(None) == "" and bounded_text(42) == "42"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_any_unicode_text_routes(router: QueryRouter, text: str) -> None:
    assert_valid(router, text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=5000))
def test_any_bytes_decoded_leniently_route(router: QueryRouter, raw: bytes) -> None:
    assert_valid(router, raw.decode("utf-8", "replace"))
    assert_valid(router, raw.decode("latin-1"))
