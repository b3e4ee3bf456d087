"""The peer: llama.cpp on the model's own GGUF file with its defaults, for the ratios.

It is measured twice in one run, at the full stage:

- at **batch 1** ("llama.cpp default"), before the search;
- at the **recommendation's batch size**, once the recommendation is known, so that the
  headline ratio (``ratios.tokens_per_joule_vs_peer_same_batch``) compares equal batch
  sizes. The batch-1 ratio (``ratios.tokens_per_joule_vs_peer``) mixes the gain of
  batching with the gain of the configuration, and is labelled so.

Both are stored in the study, so a resumed search does not measure them again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from wattlm.bench.backends import backend_class
from wattlm.search import study as st
from wattlm.search.candidate import Candidate, baseline_candidate

if TYPE_CHECKING:
    from wattlm.report.records import TrialRecord
    from wattlm.search.state import SearchState

#: the peer's backend: llama.cpp on the model's own GGUF file
PEER_BACKEND = "llamacpp"


def _file_type(s: SearchState) -> str | None:
    """The GGUF type of the model's own file (``None``: no peer possible, noted)."""
    if not s.real:
        return "Q4_1"
    peer = backend_class(PEER_BACKEND)
    if not peer.is_available():
        s.notes.append(f"no peer: llama.cpp ({peer.requires}) is not installed")
        return None
    if s.base is None or s.base.gguf_path is None:
        s.notes.append("no peer: the model is not a GGUF file llama.cpp could run as is")
        return None
    from wattlm.export.gguf_reader import check_gguf

    return check_gguf(s.base.gguf_path).file_type_name or "GGUF"


def measure_peer(s: SearchState, batch_size: int = 1) -> TrialRecord | None:
    """The peer at ``batch_size`` (full stage), from the study if already measured."""
    key = "peer" if batch_size == 1 else f"peer:batch{batch_size}"
    stored = s.study.user_attrs.get(key)
    if stored is not None:
        return stored
    ftype = _file_type(s)
    if ftype is None:
        return None
    cand = Candidate("none", {}, (), PEER_BACKEND, ftype.lower(), batch_size, s.threads)
    s.ui.stage(f"peer: llama.cpp on the model's own {ftype} file, batch {batch_size}")
    spec = s.spec(-1, cand, "full", peer=True)
    full_quality = s.study.user_attrs.get(st.quality_key("full", baseline_candidate(1)))
    if full_quality:  # the same weights as the baseline: the file, dequantized
        spec = dataclasses.replace(spec, quality=full_quality["quality"], quality_from=0)
    outcome, seconds = s.evaluate(spec)
    rec = s.make_record(-1, cand, "full", outcome, seconds)
    rec["number"] = None  # not a trial of the search
    rec["label"] = f"llama.cpp default ({ftype} file, batch {batch_size})"
    rec["screen_metrics"] = None
    rec["params"] = {
        "file": ftype,
        "backend": PEER_BACKEND,
        "batch_size": batch_size,
        "threads": s.threads,
    }
    s.study.set_user_attr(key, rec)
    return rec
