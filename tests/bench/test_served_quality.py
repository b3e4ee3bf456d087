"""Quality measured on the runtime that serves: each runtime's own perplexity beside torch's
cross-check, and fidelity (KL, top-1) of every backend against a cached reference."""

from __future__ import annotations

import contextlib
from typing import ClassVar

import pytest
import torch

from wattlm.bench import served_quality as sq
from wattlm.bench.backends.base import Backend
from wattlm.bench.config import BenchConfig
from wattlm.bench.fidelity import compare, reference_distribution, torch_log_probs
from wattlm.bench.quality import perplexity
from wattlm.testing.tiny import tiny_causal_lm


class _Scaled(Backend):
    """A 'runtime' whose log-probabilities are the model's logits at a temperature of 2."""

    name = "scaled"
    log_probs_method = "test: logits / 2"

    @classmethod
    @contextlib.contextmanager
    def log_probs(cls, loaded, config, exported=None):
        fn = torch_log_probs(loaded.model)
        yield lambda window: torch.log_softmax(fn(window) / 2.0, dim=-1)

    def prefill(self, prompts):  # pragma: no cover - never run
        raise NotImplementedError

    def decode(self, steps):  # pragma: no cover - never run
        raise NotImplementedError


class _Silent(_Scaled):
    name = "silent"
    log_probs_method = None


@pytest.fixture
def registry(monkeypatch):
    classes = {"scaled": _Scaled, "silent": _Silent}
    real = sq.backend_class
    monkeypatch.setattr(sq, "backend_class", lambda n: classes.get(n) or real(n))


def _cfg():
    return BenchConfig(model="tiny", ppl_max_length=32, ppl_stride=16, threads=1)


def _no_progress(label):
    return lambda **kw: None


def test_runtime_perplexity_is_its_own_with_torch_as_a_cross_check(registry):
    lm = tiny_causal_lm(seed=1)
    ids = list(range(3, 83))
    torch_q = {**perplexity(lm.model, ids, max_length=32, stride=16).to_dict(), "backend": "torch"}
    runtime, fidelity = sq.served_quality(
        lm, _cfg(), ["torch", "scaled", "silent"], {}, token_ids=ids,
        torch_quality=torch_q, reference=None, advance=_no_progress,
    )  # fmt: skip
    assert set(runtime) == {"scaled"} and fidelity == {}
    fn = torch_log_probs(lm.model)
    expected = perplexity(lambda w: torch.log_softmax(fn(w) / 2.0, -1), ids, max_length=32,
                          stride=16).value  # fmt: skip
    entry = runtime["scaled"]
    assert entry["value"] == pytest.approx(expected, rel=1e-6)
    assert entry["value"] != pytest.approx(torch_q["value"], rel=1e-3)  # a different computation
    assert entry["method"] == "test: logits / 2" and entry["backend"] == "scaled"
    check = entry["cross_check"]
    assert check["value"] == torch_q["value"]
    assert check["relative_difference"] == pytest.approx(
        (expected - torch_q["value"]) / torch_q["value"], abs=1e-6
    )
    assert "silent gives no next-token log-probabilities" in sq.unscored_note(["silent", "torch"])


def test_fidelity_of_each_backend_against_the_reference(registry):
    lm = tiny_causal_lm(seed=2)
    ref = reference_distribution(lm.model, list(range(3, 99)), window=32, context=16)
    runtime, fidelity = sq.served_quality(
        lm, _cfg(), ["torch", "scaled"], {}, token_ids=None, torch_quality=None,
        reference=ref, advance=_no_progress,
    )  # fmt: skip
    assert runtime == {}
    assert fidelity["torch"]["kl_mean"] < 1e-4 and fidelity["torch"]["top1_agreement"] == 1.0
    assert fidelity["torch"]["method"] == "torch"
    fn = torch_log_probs(lm.model)
    expected = compare(ref, lambda w: torch.log_softmax(fn(w) / 2.0, -1))
    assert fidelity["scaled"]["kl_mean"] == pytest.approx(expected.kl_mean, rel=1e-6)
    assert fidelity["scaled"]["kl_mean"] > 1e-3  # temperature 2 is measurably different
    assert fidelity["scaled"]["tokens"] == ref.scored_tokens


def test_cross_check_sign_and_size():
    assert sq.cross_check({"value": 10.0}, 9.0) == {
        "backend": "torch",
        "value": 10.0,
        "relative_difference": -0.1,
    }


@pytest.mark.assets
def test_bench_on_llama_cpp_records_its_own_perplexity_and_fidelity(tmp_path):
    pytest.importorskip("xllamacpp", reason="needs the llamacpp extra (xllamacpp)")
    from wattlm.bench.runner import bench
    from wattlm.models.load import load_model
    from wattlm.report.result import validate_result
    from wattlm.testing.meters import FakeMeter

    lm = load_model("smollm2-135m")
    ids = lm.tokenizer("The capital of France is Paris. " * 40).input_ids
    ref = reference_distribution(lm.model, ids, window=128, context=64, max_tokens=64)
    cfg = BenchConfig(
        model="smollm2-135m", backends=("llamacpp",), batch_sizes=(1,), prompt_tokens=8,
        new_tokens=2, warmup=0, repeats=1, threads=2, ppl_max_length=128, ppl_stride=64,
        ppl_max_tokens=256,
    )  # fmt: skip
    result = bench(cfg, model=lm, meter=FakeMeter(power_w=10.0), progress=False, reference=ref)
    validate_result(result)
    q = result["runtime_quality"]["llamacpp"]
    assert q["method"].startswith("llama.cpp hidden states")
    assert q["tokens"] == result["quality"]["tokens"] == 255
    # the Q4_1 file on llama.cpp vs torch on its dequantized weights: close, not identical
    assert abs(q["cross_check"]["relative_difference"]) < 0.01
    f = result["fidelity"]["llamacpp"]
    assert f["tokens"] == 64 and f["kl_mean"] < 0.05 and f["top1_agreement"] > 0.9


def test_measure_served_matches_the_bench_sections_and_labels_a_proxy(registry, text_file):
    lm = tiny_causal_lm(seed=3)
    cfg = BenchConfig(model="tiny", data=str(text_file), ppl_max_length=32, ppl_stride=16,
                      ppl_max_tokens=96, threads=1)  # fmt: skip
    ids = sq.quality_tokens(lm, cfg)
    ref = reference_distribution(lm.model, ids, window=32, context=16)
    runtime, fidelity = sq.served_quality(
        lm, cfg, ["scaled"], {}, token_ids=ids, torch_quality=None, reference=ref,
        advance=_no_progress,
    )  # fmt: skip
    entry = sq.measure_served(lm, cfg, "scaled", reference=ref)
    assert entry["value"] == pytest.approx(runtime["scaled"]["value"], rel=1e-9)
    assert entry["fidelity"]["kl_mean"] == pytest.approx(fidelity["scaled"]["kl_mean"], rel=1e-9)
    # round trip through a result's sections
    result = {"quality": None}
    sq.put_served(result, "scaled", entry)
    assert sq.served_entry(result, "scaled") == entry
    proxy = sq.measure_served(lm, cfg, "silent")
    assert proxy["method"] == sq.PROXY_METHOD and proxy["backend"] == "torch"
    assert proxy["value"] == pytest.approx(
        perplexity(lm.model, ids, max_length=32, stride=16).value, rel=1e-9
    )


class _Counting(_Scaled):
    """The scaled runtime, counting the windows it is asked to run."""

    name = "counting"
    calls: ClassVar[list] = []

    @classmethod
    @contextlib.contextmanager
    def log_probs(cls, loaded, config, exported=None):
        with _Scaled.log_probs(loaded, config, exported) as fn:

            def run(window):
                cls.calls.append(tuple(window))
                return fn(window)

            yield run


def test_windows_shared_by_perplexity_and_fidelity_run_once(monkeypatch):
    monkeypatch.setattr(sq, "backend_class", lambda n: _Counting if n == "counting" else None)
    lm = tiny_causal_lm(seed=2)
    ids = list(range(3, 99))  # perplexity windows start at 0, 16, 32, ..., 64 (32 long)
    ref = reference_distribution(lm.model, ids, window=32, context=16, max_tokens=32)
    assert [w[0] for w in ref.windows] == [3, 35]  # both are perplexity windows too
    monkeypatch.setattr(sq, "quality_tokens", lambda loaded, config: ids)
    _Counting.calls = []
    entry = sq.measure_served(
        lm, BenchConfig(model="tiny", data="README.md", ppl_max_length=32, ppl_stride=16),
        "counting", reference=ref,
    )  # fmt: skip
    assert len(_Counting.calls) == len(set(_Counting.calls))  # no window ran twice
    assert set(ref.windows) <= set(_Counting.calls)
    ppl_windows = {tuple(ids[s : s + 32]) for s in range(0, len(ids) - 32 + 16, 16)}
    assert set(_Counting.calls) == ppl_windows | set(ref.windows)
    assert len(_Counting.calls) == len(ppl_windows)  # fidelity cost no extra window
    # the same figures as scoring each separately
    fn = torch_log_probs(lm.model)
    scaled = lambda w: torch.log_softmax(fn(w) / 2.0, -1)  # noqa: E731
    alone = compare(ref, scaled)
    assert entry["fidelity"]["kl_mean"] == pytest.approx(alone.kl_mean, rel=1e-6)
    assert entry["fidelity"]["top1_agreement"] == alone.top1_agreement
