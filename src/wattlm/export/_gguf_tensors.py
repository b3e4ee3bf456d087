"""Llama tensors under llama.cpp's names and layout, and their ggml encodings.

Follows llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel``): tensor names from
``gguf.TENSOR_NAMES``; Q and K rows permuted from Hugging Face's rotate-half rope layout to
llama.cpp's interleaved pairs; 1-D tensors (norms) always f32; a tensor whose rows do not
fill whole quantization blocks falls back to f16; a tied ``lm_head`` writes no ``output``.

Example:
    >>> import numpy as np
    >>> w = np.arange(8.0).reshape(8, 1)  # one head of size 8: rows 0-3 pair with 4-7
    >>> permute_rope(w, 1)[:, 0].tolist()
    [0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]
    >>> bool((unpermute_rope(permute_rope(w, 1), 1) == w).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, MODEL_TENSOR, TENSOR_NAMES, GGMLQuantizationType, quants

from wattlm.errors import WattlmError

Q = GGMLQuantizationType
#: 4- and 5-bit types keep the (tied) token embedding at q8_0, as the SmolLM2 Q4_1 file does
LOW_BIT = frozenset({Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1})
F16_MAX = 65504.0


def permute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder Q/K rows of each head from rotate-half ``[x0..x(d/2-1), y0..]`` to pairs."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def unpermute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of :func:`permute_rope` (llama.cpp layout back to Hugging Face's)."""
    return (
        w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


@dataclass
class TensorPlan:
    """One tensor to write: its GGUF name, the torch parameter, and the rope heads (Q/K)."""

    name: str
    param: torch.Tensor
    rope_heads: int = 0
    ggml_type: GGMLQuantizationType = Q.F32

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.param.shape)

    @property
    def nbytes(self) -> int:
        block, type_size = GGML_QUANT_SIZES[self.ggml_type]
        return self.param.numel() // block * type_size

    def encode(self) -> np.ndarray:
        """The tensor's bytes in ``ggml_type`` (row-major, numpy shape = torch shape)."""
        a = self.param.detach().to("cpu", torch.float32).numpy()
        if self.rope_heads:
            a = permute_rope(a, self.rope_heads)
        if self.ggml_type == Q.F16 and np.abs(a).max(initial=0.0) > F16_MAX:
            raise WattlmError(
                f"{self.name} has values beyond the f16 range (|x| > {F16_MAX:g})",
                hint="export with qtype='bf16' or 'f32'",
            )
        return quants.quantize(np.ascontiguousarray(a), self.ggml_type)


def _name(kind: MODEL_TENSOR, block: int | None = None) -> str:
    base = TENSOR_NAMES[kind]
    return (base.format(bid=block) if block is not None else base) + ".weight"


def _linear(module: torch.nn.Module, where: str) -> torch.Tensor:
    """The weight of a plain float ``nn.Linear`` without bias; anything else is refused."""
    w = getattr(module, "weight", None)
    plain = type(module) is torch.nn.Linear and w is not None and type(w.detach()) is torch.Tensor
    if not plain or not w.dtype.is_floating_point:
        raise WattlmError(
            f"export the float model (before int8/int4 stages): {where} is a "
            f"{type(module).__name__}, not a plain float nn.Linear",
            hint="export the checkpoint saved before quantization or low-rank stages; "
            "llama.cpp quantizes the GGUF itself (qtype='q8_0', 'q4_0'…)",
        )
    if module.bias is not None:
        raise WattlmError(f"{where} has a bias, which llama.cpp's llama graph does not read")
    return w


def plan_tensors(model: torch.nn.Module, heads: list[tuple[int, int]]) -> list[TensorPlan]:
    """All tensors of a ``LlamaForCausalLM`` in GGUF order; ``heads[i] = (n_head, n_kv)``."""
    inner, T = model.model, MODEL_TENSOR
    plans = [TensorPlan(_name(T.TOKEN_EMBD), inner.embed_tokens.weight)]
    for i, layer in enumerate(inner.layers):
        att, mlp, where = layer.self_attn, layer.mlp, f"model.layers.{i}"
        n_head, n_kv = heads[i]
        plans += [
            TensorPlan(_name(T.ATTN_NORM, i), layer.input_layernorm.weight),
            TensorPlan(
                _name(T.ATTN_Q, i), _linear(att.q_proj, f"{where}.self_attn.q_proj"), n_head
            ),
            TensorPlan(_name(T.ATTN_K, i), _linear(att.k_proj, f"{where}.self_attn.k_proj"), n_kv),
            TensorPlan(_name(T.ATTN_V, i), _linear(att.v_proj, f"{where}.self_attn.v_proj")),
            TensorPlan(_name(T.ATTN_OUT, i), _linear(att.o_proj, f"{where}.self_attn.o_proj")),
            TensorPlan(_name(T.FFN_NORM, i), layer.post_attention_layernorm.weight),
            TensorPlan(_name(T.FFN_GATE, i), _linear(mlp.gate_proj, f"{where}.mlp.gate_proj")),
            TensorPlan(_name(T.FFN_UP, i), _linear(mlp.up_proj, f"{where}.mlp.up_proj")),
            TensorPlan(_name(T.FFN_DOWN, i), _linear(mlp.down_proj, f"{where}.mlp.down_proj")),
        ]
    plans.append(TensorPlan(_name(T.OUTPUT_NORM), inner.norm.weight))
    head = _linear(model.lm_head, "lm_head")
    if head is not inner.embed_tokens.weight:
        plans.append(TensorPlan(_name(T.OUTPUT), head))
    _check_all_written(model, plans)
    return plans


def _check_all_written(model: torch.nn.Module, plans: list[TensorPlan]) -> None:
    written = {id(p.param) for p in plans}
    left = [n for n, p in model.named_parameters() if id(p) not in written]
    if left:
        raise WattlmError(
            f"the model has parameters llama.cpp's llama graph has no place for: {left[:4]}",
            hint="merge adapters or extra modules into the base weights before exporting",
        )


def choose_types(plans: list[TensorPlan], qtype: GGMLQuantizationType) -> None:
    """Set each plan's ggml type: norms f32, the rest ``qtype`` where its rows fit blocks."""
    for p in plans:
        if len(p.shape) == 1:
            p.ggml_type = Q.F32
            continue
        want = Q.Q8_0 if qtype in LOW_BIT and p.name == _name(MODEL_TENSOR.TOKEN_EMBD) else qtype
        block = GGML_QUANT_SIZES[want][0]
        p.ggml_type = want if p.shape[-1] % block == 0 else Q.F16
