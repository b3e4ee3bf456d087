"""``export_gguf``: write a Llama-family transformers model as a GGUF file for llama.cpp.

Everything is read from the model itself, so structurally pruned models export as they are:
the layer count from ``model.model.layers``, each layer's query/key-value head counts and
feed-forward width from its projection shapes (when layers differ, they are written as
per-layer arrays under llama.cpp's ``deci`` architecture, its Llama with per-layer sizes);
rope base, RMS-norm epsilon, head size and context length from ``model.config``. Tensors are encoded and streamed one at a time, into a
temporary file that is renamed onto ``out_path`` only when complete.

Example:
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> import tempfile, pathlib
    >>> lm = tiny_causal_lm()
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "tiny.gguf"
    >>> export_gguf(lm.model, lm.tokenizer, out, qtype="q8_0").name
    'tiny.gguf'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import LlamaFileType as F

from wattlm._files import atomic_path
from wattlm.errors import WattlmError
from wattlm.export._gguf_hparams import architecture, check_llama, head_counts, write_hparams
from wattlm.export._gguf_tensors import choose_types, plan_tensors
from wattlm.export._gguf_vocab import vocab_from_gguf, vocab_from_tokenizer

#: qtype -> (ggml type of 2-D weights, llama.cpp file type)
QTYPES: dict[str, tuple[Q, F]] = {
    "f32": (Q.F32, F.ALL_F32),
    "f16": (Q.F16, F.MOSTLY_F16),
    "bf16": (Q.BF16, F.MOSTLY_BF16),
    "q8_0": (Q.Q8_0, F.MOSTLY_Q8_0),
    "q5_1": (Q.Q5_1, F.MOSTLY_Q5_1),
    "q5_0": (Q.Q5_0, F.MOSTLY_Q5_0),
    "q4_1": (Q.Q4_1, F.MOSTLY_Q4_1),
    "q4_0": (Q.Q4_0, F.MOSTLY_Q4_0),
}


def export_gguf(
    model: Any,
    tokenizer: Any,
    out_path: str | Path,
    *,
    qtype: str = "f16",
    tokenizer_gguf: str | Path | None = None,
) -> Path:
    """Write ``model`` (a ``LlamaForCausalLM``, pruned or not) as a GGUF file llama.cpp runs.

    Args:
        model: the float model; int8/int4 wattlm modules are refused (export before them).
        tokenizer: its fast byte-level BPE tokenizer (the vocabulary metadata is derived
            from it), unless ``tokenizer_gguf`` is given.
        out_path: the ``.gguf`` file to write (replaced atomically).
        qtype: ggml type of the 2-D weights, one of :data:`QTYPES`; norms stay f32, rows
            that do not fill whole blocks fall back to f16, and 4/5-bit types keep the token
            embedding at q8_0.
        tokenizer_gguf: copy the ``tokenizer.*`` metadata from this GGUF file instead (use
            the file a model was loaded from: transformers' GGUF loader drops details such
            as SmolLM2's digit-splitting pre-tokenizer).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    if qtype not in QTYPES:
        raise WattlmError(f"unknown GGUF qtype {qtype!r}", hint=f"use one of {', '.join(QTYPES)}")
    check_llama(model)
    cfg = model.config
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    heads = head_counts(model, head_dim)
    plans = plan_tensors(model, heads)
    ggml_type, file_type = QTYPES[qtype]
    choose_types(plans, ggml_type)
    n_vocab = int(model.model.embed_tokens.weight.shape[0])
    if tokenizer_gguf:
        vocab = vocab_from_gguf(tokenizer_gguf)
    else:
        vocab = vocab_from_tokenizer(tokenizer, n_vocab)
    if len(vocab.tokens) != n_vocab:
        raise WattlmError(
            f"the tokenizer has {len(vocab.tokens)} tokens but the embedding {n_vocab} rows"
        )
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        w = gguf.GGUFWriter(tmp, architecture(model, heads))
        try:
            write_hparams(w, model, heads, head_dim)
            w.add_file_type(int(file_type))
            w.add_quantization_version(gguf.GGML_QUANT_VERSION)
            vocab.write(w)
            for p in plans:
                w.add_tensor_info(p.name, p.shape, np.dtype(np.float32), p.nbytes, p.ggml_type)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            for p in plans:
                w.write_tensor_data(p.encode())
        finally:
            w.close()
    return out_path
