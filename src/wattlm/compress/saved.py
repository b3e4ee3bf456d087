"""Saving and loading models changed by compression stages.

A compressed model folder holds the Hugging Face ``config.json`` (already reflecting
structural changes such as pruned heads or dropped layers), ``model.safetensors`` with the
stored tensors (int8/int4 buffers included, each in its saved dtype), the tokenizer, and
``wattlm_compression.json``: the ordered stage configs. Loading builds the float model
from the config, lets each stage's restorer rebuild its modules, then assigns the saved
tensors (dtypes kept) and re-ties the embedding.

:func:`~wattlm.models.load.load_model` and :func:`~wattlm.models.load.save_model` reach this
module through the folder-format registry of :mod:`wattlm.models.marked` (models sit below
compress and never import it): importing :mod:`wattlm.compress` registers it.

Example:
    >>> from wattlm.models.marked import format_for
    >>> format_for(COMPRESSION_FILE).read is load_compressed
    True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_model
from transformers import AutoConfig, AutoTokenizer

from wattlm.compress.base import CompressConfig, restore_
from wattlm.errors import WattlmError
from wattlm.models.load import LoadedModel
from wattlm.models.marked import COMPRESSION_FILE, FolderFormat, register_format

WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


def save_compressed(
    model: torch.nn.Module, stages: list[dict[str, Any]], folder: Path, *, config: Any = None
) -> None:
    """Write config (``config`` or the model's), tensors and the stage list into ``folder``."""
    (config or model.config).save_pretrained(folder)
    save_model(model, str(folder / WEIGHTS_FILE))  # drops the tied duplicate safely
    record = {"format_version": FORMAT_VERSION, "stages": stages}
    (folder / COMPRESSION_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def load_compressed(folder: Path, *, spec: str, auto: Any, task: str) -> LoadedModel:
    """Rebuild a model saved by :func:`save_compressed`."""
    record = json.loads((folder / COMPRESSION_FILE).read_text(encoding="utf-8"))
    if record.get("format_version", 0) > FORMAT_VERSION:
        raise WattlmError(f"{folder} was saved by a newer wattlm", hint="upgrade wattlm")
    stages = record["stages"]
    config = AutoConfig.from_pretrained(folder)
    model = auto.from_config(config, dtype=torch.float32)
    for stage in stages:
        restore_(model, CompressConfig.from_dict(stage["config"]))
    # copies, not the file's buffer: safetensors hands out tensors at the file's offsets,
    # and torch's packed int8 kernels crash on an int8 tensor that is not 64-byte aligned
    state = {k: v.clone() for k, v in load_file(str(folder / WEIGHTS_FILE)).items()}
    tied = _tied_names(model) if getattr(config, "tie_word_embeddings", False) else {}
    result = model.load_state_dict(state, strict=False, assign=True)
    missing = set(result.missing_keys) - set(tied.values())
    if missing or result.unexpected_keys:
        raise WattlmError(
            f"{folder} does not match its compression stages: missing "
            f"{sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}"
        )
    if tied:  # the file holds one of the two tied tensors; share it again
        emb, out = model.get_input_embeddings(), model.get_output_embeddings()
        if tied["input"] in result.missing_keys:
            emb.weight = out.weight
        else:
            out.weight = emb.weight
    tokenizer = AutoTokenizer.from_pretrained(folder)
    names = ", ".join(s["method"] for s in stages)
    return LoadedModel(
        model,
        tokenizer,
        spec,
        folder.resolve(),
        "hf",
        task,
        notes=[f"compressed by wattlm: {names}"],
        compression=stages,
    )


def _tied_names(model: torch.nn.Module) -> dict[str, str]:
    """State-dict names of the input embedding and output projection weights (none when the
    model has no output embedding, e.g. a BERT classifier whose config says tied)."""
    emb, out = model.get_input_embeddings(), model.get_output_embeddings()
    if out is None:
        return {}
    names = {m: n for n, m in model.named_modules()}
    return {"input": f"{names[emb]}.weight", "output": f"{names[out]}.weight"}


register_format(FolderFormat(COMPRESSION_FILE, read=load_compressed, write=save_compressed))
