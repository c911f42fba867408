"""Download the engines' weights into the shared Hugging Face cache, so the engines themselves run offline."""

import sys

from huggingface_hub import snapshot_download

# Original checkpoints and consolidated duplicates are never loaded by vLLM; skipping them saves many GB.
SKIPPED = ["original/*", "*.pth", "*.pt", "*.gguf", "consolidated*"]


def main(model_ids: list[str]) -> int:
    """Fetch each model id (cached files are kept); stop at the first failure."""
    for model_id in model_ids:
        print(f"fetching {model_id}", flush=True)
        path = snapshot_download(model_id, ignore_patterns=SKIPPED)
        print(f"ready {model_id} at {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
