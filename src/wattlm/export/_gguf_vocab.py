"""Tokenizer metadata for a GGUF file: from a Hugging Face tokenizer, or copied from a GGUF.

llama.cpp needs, for a GPT-2-style byte-level BPE (``tokenizer.ggml.model = "gpt2"``): the
token strings in id order, a type per token (normal, control, user-defined, unused), the
merges, the special token ids, and the name of the pre-tokenizer (the regex that splits text
before BPE). The pre-tokenizer name is read off the structure of ``tokenizer.json``'s
``pre_tokenizer``; structures not in :data:`PRE_TOKENIZERS` are refused rather than guessed.

Example:
    >>> from wattlm.testing.tiny import tiny_tokenizer
    >>> v = vocab_from_tokenizer(tiny_tokenizer(), 320)
    >>> v.model, v.pre, v.tokens[:3], v.types[:3], v.bos_token_id
    ('gpt2', 'gpt-2', ['<s>', '</s>', '<pad>'], [3, 3, 3], 0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, TokenType

from wattlm.errors import WattlmError
from wattlm.export.gguf_reader import check_gguf

#: structure of tokenizer.json's pre_tokenizer -> llama.cpp's ``tokenizer.ggml.pre``
PRE_TOKENIZERS = {
    (("ByteLevel", True),): "gpt-2",
    # SmolLM2 / StarCoder: single digits, then the GPT-2 regex (same llama.cpp regex)
    (("Digits", True), ("ByteLevel", True)): "smollm",
}
_SPECIALS = ("bos", "eos", "unknown", "padding")


@dataclass
class Vocab:
    """What llama.cpp reads under ``tokenizer.*`` (ids are ``None`` when absent)."""

    model: str
    pre: str
    tokens: list[str]
    types: list[int]
    merges: list[str]
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    unknown_token_id: int | None = None
    padding_token_id: int | None = None
    add_bos_token: bool = False
    add_space_prefix: bool = False
    chat_template: str | None = None

    def write(self, w: GGUFWriter) -> None:
        """Add these keys to a GGUF writer."""
        w.add_tokenizer_model(self.model)
        w.add_tokenizer_pre(self.pre)
        w.add_token_list(self.tokens)
        w.add_token_types(self.types)
        w.add_token_merges(self.merges)
        for key in _SPECIALS:
            value = getattr(self, f"{key}_token_id")
            if value is not None:
                w.add_uint32(f"tokenizer.ggml.{key}_token_id", value)
        w.add_add_bos_token(self.add_bos_token)
        w.add_add_space_prefix(self.add_space_prefix)
        if self.chat_template:
            w.add_chat_template(self.chat_template)


def _pre_name(pre: dict[str, Any] | None) -> str:
    steps = (pre or {}).get("pretokenizers", [pre]) if pre else []
    sig = []
    for s in steps:
        t = s.get("type")
        sig.append(
            (t, s.get("use_regex", True) if t == "ByteLevel" else s.get("individual_digits"))
        )
    name = PRE_TOKENIZERS.get(tuple(sig))
    if name is None:
        raise WattlmError(
            f"the tokenizer's pre-tokenizer {tuple(sig)} has no known llama.cpp equivalent",
            hint="pass tokenizer_gguf= a GGUF file of the same tokenizer to copy its metadata",
        )
    return name


def vocab_from_tokenizer(tokenizer: Any, vocab_size: int) -> Vocab:
    """Derive the metadata from a fast (``tokenizers``-backed) byte-level BPE tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise WattlmError("only fast (tokenizers-backed) tokenizers can be exported to GGUF")
    data = json.loads(backend.to_str())
    model = data["model"]
    if model.get("type") != "BPE" or (data.get("decoder") or {}).get("type") != "ByteLevel":
        raise WattlmError(
            "only byte-level BPE tokenizers (GPT-2 style) are derived for GGUF export",
            hint="pass tokenizer_gguf= a GGUF file of the same tokenizer to copy its metadata",
        )
    pre = _pre_name(data.get("pre_tokenizer"))
    tokens: list[str | None] = [None] * vocab_size
    types = [int(TokenType.NORMAL)] * vocab_size
    entries = [(i, t, None) for t, i in model["vocab"].items()]
    entries += [(a["id"], a["content"], a.get("special", False)) for a in data["added_tokens"]]
    for i, text, special in entries:
        if i >= vocab_size:
            raise WattlmError(
                f"token id {i} ({text!r}) is beyond the embedding's {vocab_size} rows"
            )
        tokens[i] = text
        if special is not None:
            types[i] = int(TokenType.CONTROL if special else TokenType.USER_DEFINED)
    for i, t in enumerate(tokens):
        if t is None:
            tokens[i], types[i] = f"[PAD{i}]", int(TokenType.UNUSED)
    with_special = tokenizer.encode("a")
    bos = tokenizer.bos_token_id
    return Vocab(
        model="gpt2",
        pre=pre,
        tokens=tokens,
        types=types,
        merges=[m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])],
        bos_token_id=bos,
        eos_token_id=tokenizer.eos_token_id,
        unknown_token_id=tokenizer.unk_token_id,
        padding_token_id=tokenizer.pad_token_id,
        add_bos_token=bos is not None and len(with_special) > 1 and with_special[0] == bos,
        add_space_prefix=False,
        chat_template=getattr(tokenizer, "chat_template", None) or None,
    )


def vocab_from_gguf(path: str | Path) -> Vocab:
    """Read the ``tokenizer.*`` metadata of an existing GGUF file."""
    arrays = tuple(f"tokenizer.ggml.{k}" for k in ("tokens", "token_type", "merges"))
    meta = check_gguf(path, arrays=arrays).metadata

    def get(key: str, default: Any = None) -> Any:
        return meta.get(f"tokenizer.{key}", default)

    if get("ggml.model") != "gpt2":
        raise WattlmError(
            f"{path} has a {get('ggml.model')!r} tokenizer; only 'gpt2' (byte-level BPE) "
            "metadata is copied"
        )
    return Vocab(
        model="gpt2",
        pre=get("ggml.pre", "default"),
        tokens=list(get("ggml.tokens")),
        types=[int(t) for t in get("ggml.token_type")],
        merges=list(get("ggml.merges", [])),
        **{f"{k}_token_id": get(f"ggml.{k}_token_id") for k in _SPECIALS},
        add_bos_token=bool(get("ggml.add_bos_token", False)),
        add_space_prefix=bool(get("ggml.add_space_prefix", False)),
        chat_template=get("chat_template"),
    )
