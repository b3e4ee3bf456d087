"""A synthetic evaluator: deterministic figures from a candidate's choices, no model, no bench.

For tests of the search machinery (ask/tell, constraints, resume, Ray) and for trying a
search space quickly. The figures follow the shape of real CPU measurements (fewer bytes
per weight and larger batches cost less energy per token; coarser quantization raises
perplexity) but are made up; every energy figure is labelled ``fake``.

Example:
    >>> from wattlm.search.candidate import baseline_candidate
    >>> from wattlm.search.config import SCREEN
    >>> from wattlm.search.evaluate import TrialSpec
    >>> spec = TrialSpec(0, baseline_candidate(2), "screen", SCREEN, "decode-energy", "m", "d")
    >>> SyntheticEvaluator()(spec)["metrics"]["perplexity"]  # +1% on a short screen slice
    20.2
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from wattlm.bench.backends import backend_class
from wattlm.search import screen
from wattlm.search.metrics import empty_metrics

#: made-up mean KL divergence (nats) per unit of relative perplexity increase
KL_PER_INCREASE = 0.5
#: energy factor and relative perplexity increase of each stage method / GGUF type
STAGE_EFFECTS: dict[str, tuple[float, float]] = {
    "cast": (0.55, 0.001),
    "int8-weight": (0.40, 0.004),
    "int8-dynamic": (0.45, 0.03),
    "int4-weight": (0.25, 0.008),
    "gptq": (1.0, -0.002),
    "prune-ffn": (0.85, 0.04),
    "prune-heads": (0.9, 0.05),
    "drop-layers": (0.8, 0.08),
    "wanda": (1.0, 0.02),
    "magnitude-prune": (1.0, 0.03),
    "nm-sparsity": (1.0, 0.2),
    "lowrank": (0.7, 0.3),
    "heal": (1.0, -0.03),  # recovers quality; per-token energy unchanged
}
#: made-up healing energy per ``heal`` step (J): the one-off cost a healed trial carries
HEAL_J_PER_STEP = 0.1
QTYPE_EFFECTS: dict[str, tuple[float, float]] = {
    "q4_0": (0.11, 0.030),  # the cheapest, but over a 2% budget
    "q4_1": (0.13, 0.008),
    "q5_0": (0.15, 0.004),
    "q5_1": (0.16, 0.003),
    "q8_0": (0.24, 0.001),
    "f16": (0.5, 0.0),
    "bf16": (0.5, 0.0),
    "f32": (1.0, 0.0),
}
BASE_ENERGY_J = 1.0
BASE_PERPLEXITY = 20.0
BASE_BYTES = 1_000_000


def _stat(median: float, spread: float, unit: str, n: int) -> dict[str, Any]:
    if n == 1:  # one repeat: no interval
        return {"median": median, "ci95": None, "ci_method": "none", "n": 1, "noisy": False,
                "unit": unit}  # fmt: skip
    return {
        "median": median,
        "ci95": [median * (1 - spread), median * (1 + spread)],
        "ci_method": "t-mean",
        "n": n,
        "noisy": spread > 0.1,
        "unit": unit,
    }


def _heal_entry(stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The made-up healing cost of ``stages`` (``None`` without a ``heal`` stage).

    Example:
        >>> _heal_entry([{"method": "heal", "steps": 50}])["energy_j"]
        5.0
    """
    steps = sum(int(s.get("steps", 100)) for s in stages if s["method"] == "heal")
    if not any(s["method"] == "heal" for s in stages):
        return None
    return {"energy_j": HEAL_J_PER_STEP * steps, "energy_source": "fake", "steps": steps,
            "time_s": 0.0}  # fmt: skip


def _jitter(text: str) -> float:
    """A deterministic factor in [0.98, 1.02] per configuration."""
    digest = hashlib.sha256(text.encode()).digest()
    return 0.98 + 0.04 * digest[0] / 255


@dataclass(frozen=True)
class SyntheticEvaluator:
    """Made-up but consistent figures; ``delay_s`` per evaluation, ``spread`` the CI half-width.

    ``fail_methods`` lists stage methods whose trials fail (to test failed trials);
    ``log_path`` gets one JSON line per evaluation (number, stage, process id, start and
    end time), so tests can see what ran where and when.
    """

    delay_s: float = 0.0
    spread: float = 0.03
    fail_methods: tuple[str, ...] = ()
    log_path: str | None = None

    def __call__(self, spec: Any) -> dict[str, Any]:
        started = time.time()
        outcome = self._evaluate(spec)
        if self.log_path:
            import json
            import os

            line = {"number": spec.number, "stage": spec.stage, "pid": os.getpid()}
            line.update(start=started, end=time.time(), error=outcome["error"])
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        return outcome

    def _evaluate(self, spec: Any) -> dict[str, Any]:
        cand = spec.candidate
        if self.delay_s:
            time.sleep(self.delay_s)
        stages = cand.effective_stages()
        if any(s["method"] in self.fail_methods for s in stages):
            from wattlm.search.evaluate import failed_outcome

            return failed_outcome(f"synthetic failure of {stages[0]['method']}")
        energy, increase, size = BASE_ENERGY_J, 0.0, 1.0
        for stage in stages:
            e, q = STAGE_EFFECTS.get(stage["method"], (1.0, 0.0))
            energy, increase, size = energy * e, increase + q, size * e
        if spec.peer or backend_class(cand.backend).runs_gguf:
            e, q = QTYPE_EFFECTS.get(str(cand.qtype).lower(), (0.3, 0.0))
            energy, size = energy * e, size * e
            increase += 0.0 if spec.peer else q
        energy *= cand.batch_size**-0.6 * (0.9 if cand.threads > 1 else 1.0)
        energy *= _jitter(cand.key() + spec.stage)
        new = spec.settings.new_tokens
        latency = 50.0 * energy / BASE_ENERGY_J * cand.batch_size**0.6 * (new / 64) ** 0.01
        ppl_tokens = spec.settings.ppl_max_tokens
        ppl = BASE_PERPLEXITY * (1.0 + increase) * (1.0 + 0.01 * (ppl_tokens < 4096))
        if spec.quality is not None:
            ppl = spec.quality["value"]
        quality = {
            "metric": "perplexity",
            "value": ppl,
            "tokens": ppl_tokens,
            "max_length": spec.ppl_max_length,
            "stride": spec.ppl_stride,
            # made up: KL in proportion to the increase, the same at every stage (as the
            # real reference's tokens are)
            "fidelity": {
                "kl_mean": KL_PER_INCREASE * abs(increase),
                "top1_agreement": max(0.0, 1.0 - abs(increase)),
            },
        }
        if spec.quality is not None:
            quality = dict(spec.quality)
        if screen.outside_quality(spec, quality if spec.quality is None else None):
            size_bytes = int(BASE_BYTES * size)
            return {**screen.skipped_outcome(quality, size_bytes, []), "energy_source": "fake"}
        # a clear loser stops after one repeat (what the real bench's StopRule does); the
        # adaptive rule stops at min_repeats (the made-up figures are precise)
        n = spec.settings.repeats if spec.settings.rel_width is None else spec.settings.min_repeats
        stopped = spec.stop_above is not None and energy > spec.stop_above
        if stopped:
            n = 1
        metrics = empty_metrics()
        metrics.update(
            perplexity=ppl,
            kl_mean=quality["fidelity"]["kl_mean"],
            top1_agreement=quality["fidelity"]["top1_agreement"],
            objective=_stat(energy, self.spread, "J/token", n),
            energy_j_per_token=_stat(energy, self.spread, "J/token", n),
            decode_tokens_per_s=_stat(
                1000.0 * cand.batch_size / latency, self.spread, "tokens/s", n
            ),
            latency_ms_per_token=_stat(latency, self.spread, "ms/token", n),
            peak_rss_bytes=int(BASE_BYTES * 2),
            weight_bytes=int(BASE_BYTES * size),
        )
        early_stop = screen.pruned_text(1) if stopped else None
        heal = _heal_entry(stages)
        return {
            **({"heal": heal} if heal is not None else {}),
            "metrics": metrics,
            "quality": quality,
            "result_path": None,
            "energy_source": "fake",
            "notes": [early_stop] if early_stop else [],
            "error": None,
            "early_stop": early_stop,
        }
