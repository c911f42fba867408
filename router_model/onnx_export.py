"""Offline: MiniLM (from its PyPI package) exported to ONNX with pooling inside, then int8-quantised.

Needs torch and onnx (training time only); the result is read by `router_model.onnx_embedder` without them.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from router_model.embedders import minilm_model_dir


def mean_pooled(hidden: Any, attention_mask: Any) -> Any:
    """Token states averaged over the mask and L2-normalised (sentence-transformers' MiniLM recipe); training
    and the exported graph both call this, so the tuned vectors are the ones served."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    vector = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
    return vector / vector.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _pooled_model(model_dir: Path) -> Any:
    import torch
    from transformers import AutoModel

    class MeanPooled(torch.nn.Module):
        """MiniLM with `mean_pooled` inside, so the ONNX graph returns the sentence vector."""

        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            return mean_pooled(hidden, attention_mask)

    return MeanPooled(AutoModel.from_pretrained(str(model_dir))).eval()


def export_minilm_int8(out: Path, model_dir: Path | None = None) -> Path:
    """Write MiniLM (the packaged one, or a fine-tuned copy in `model_dir`) as int8 ONNX to `out`; weights are
    quantised per output channel, which keeps the embeddings close to fp32."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(0)
    model = _pooled_model(model_dir or minilm_model_dir())
    example = (torch.ones(1, 8, dtype=torch.long), torch.ones(1, 8, dtype=torch.long))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "minilm.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, example, str(fp32), input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
                opset_version=17, dynamo=False,
            )
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    return out
