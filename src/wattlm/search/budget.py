"""The up-front time check of ``optimize``: can ``--time-budget`` hold a search at all?

Before anything is loaded, the run's minimum is estimated from the stage settings: the
baseline (screen + full), the peer (batch 1, and again at the recommendation's batch
size), one screened trial, the re-measurements and saving + re-benching the
recommendation. A budget below it is refused in one line (exit 2) with the time needed,
so that a search never ends having tried nothing.

The estimate of a stage is a fixed start-up cost plus per-token costs of perplexity,
prefill and decode, sized on SmolLM2-135M in float32 on a 2-core CPU (the slowest
configuration a search measures: the baseline); a smaller machine or a larger model
needs more, so the check only refuses what cannot work, and the search's own clock
(:meth:`wattlm.search.state.SearchState.reserve_s`) takes over once trials are timed.
"""

from __future__ import annotations

from wattlm.errors import WattlmError
from wattlm.search.config import OptimizeConfig, StageSettings

#: seconds of one measurement that do not depend on its length (tokenizing, meter set-up and
#: its idle reading, process start, model load)
STAGE_START_S = 20.0
#: seconds per perplexity token (512-token windows, stride 256: each token is seen twice)
PPL_S_PER_TOKEN = 4.0e-3
#: seconds per prompt token (prefill) and per generated token (decode), batch 1
PREFILL_S_PER_TOKEN = 1.0e-3
DECODE_S_PER_TOKEN = 0.03
#: a trial's copy + compress + export beyond its measurement
TRIAL_BUILD_S = 10.0
#: saving the recommended model beyond its full-stage re-bench
SAVE_S = 20.0


def stage_s(settings: StageSettings) -> float:
    """Estimated wall seconds of one measurement at ``settings``.

    Example:
        >>> from wattlm.search.config import SCREEN, FULL
        >>> round(stage_s(SCREEN)), round(stage_s(FULL))
        (26, 45)
    """
    # adaptive repeats (``rel_width``): the fewest a stage may take, so that the check
    # only refuses what cannot work
    repeats = settings.repeats if settings.rel_width is None else settings.min_repeats
    runs = settings.warmup + repeats
    return (
        STAGE_START_S
        + PPL_S_PER_TOKEN * settings.ppl_max_tokens
        + runs * (PREFILL_S_PER_TOKEN * settings.prompt_tokens)
        + runs * DECODE_S_PER_TOKEN * settings.new_tokens
    )


def minimum_budget_s(cfg: OptimizeConfig) -> float:
    """The least time a search with ``cfg`` needs: baseline, peer(s), one trial, reserve.

    Example:
        >>> round(minimum_budget_s(OptimizeConfig()))
        427
        >>> round(minimum_budget_s(OptimizeConfig(peer=False, remeasure=0)))
        172
    """
    screen, full = stage_s(cfg.screen), stage_s(cfg.full)
    peers = 2 * full if cfg.peer else 0.0
    one_trial = screen + TRIAL_BUILD_S
    remeasure = cfg.remeasure * (full + TRIAL_BUILD_S)
    recommend = full + SAVE_S
    return screen + full + peers + one_trial + remeasure + recommend


def check_time_budget(cfg: OptimizeConfig) -> None:
    """Refuse a ``--time-budget`` that cannot hold one searched configuration.

    Example:
        >>> try:
        ...     check_time_budget(OptimizeConfig(time_budget_s="10s"))
        ... except WattlmError as err:
        ...     print(err.message)
        --time-budget 10s cannot hold a search: it needs about 7m10s (baseline, peer, one trial, 3 re-measurements, the recommendation)
    """
    budget = cfg.time_budget_s
    if budget is None:
        return
    needed = minimum_budget_s(cfg)
    if budget < needed:
        what = "baseline, peer, one trial" if cfg.peer else "baseline, one trial"
        if cfg.remeasure:
            what += f", {cfg.remeasure} re-measurement{'s' if cfg.remeasure != 1 else ''}"
        raise WattlmError(
            f"--time-budget {_clock(budget)} cannot hold a search: it needs about "
            f"{_clock(_round_up(needed))} ({what}, the recommendation)",
            hint=f"pass --time-budget {_clock(_round_up(needed))} or more, or none",
        )


def _round_up(seconds: float) -> float:
    return -(-seconds // 10) * 10


def _clock(seconds: float) -> str:
    """``290`` → ``4m50s``; ``10`` → ``10s``."""
    s = round(seconds)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"
