"""Exploration when the sampler repeats itself: an unmeasured configuration, drawn at random.

Optuna's samplers settle on a region and then propose configurations already measured (the
loop answers those from their records at no cost). :class:`Explorer` counts such answers;
after :data:`EXPLORE_AFTER` in a row it enqueues a configuration of the space no trial has
run, so the next ask measures something new and the sampler learns from it as from its
own proposal.
"""

from __future__ import annotations

from typing import Any

#: proposals in a row of configurations already measured after which the next trial asks
#: an unmeasured one drawn at random: NSGA-II settles on its front and proposes it again
#: and again (about 250 of 300 asks in a default run on SmolLM2-135M)
EXPLORE_AFTER = 3
EXPLORE_ATTR = "explore"


class Explorer:
    """Draws an unmeasured configuration when the sampler keeps repeating itself.

    Counts the sampler's proposals of measured configurations in a row; after
    :data:`EXPLORE_AFTER` of them, :meth:`answered` enqueues one configuration of the space
    that no trial has run (nor runs now), drawn at random (seeded: a run is reproducible),
    so the next ask measures it and the sampler learns from it as from its own proposal.
    The grid sampler never repeats itself and is left alone.

    Example:
        >>> import optuna
        >>> from wattlm.search.space import load_space
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study()
        >>> e = Explorer(load_space("default"), seed=0)
        >>> [e.answered(study, seen=set()) for _ in range(EXPLORE_AFTER)]
        [False, False, True]
        >>> study.ask().user_attrs[EXPLORE_ATTR]
        True
    """

    def __init__(self, space: Any, seed: int) -> None:
        import random

        self.points = space.points()
        self.rng = random.Random(seed)
        self.repeats = self.drawn = 0

    def asked(self) -> None:
        """The sampler proposed a configuration not measured before."""
        self.repeats = 0

    def answered(self, study: Any, seen: set[str]) -> bool:
        """The sampler proposed a measured configuration; ``seen``: the keys of every
        configuration run or running. Returns whether an unmeasured one was enqueued."""
        self.repeats += 1
        if self.repeats < EXPLORE_AFTER:
            return False
        self.repeats = 0
        fresh = [(p, c) for p, c in self.points if c.key() not in seen]
        if not fresh:
            return False
        params, _ = self.rng.choice(fresh)
        study.enqueue_trial(params, user_attrs={EXPLORE_ATTR: True})
        self.drawn += 1
        return True

    def note(self) -> str | None:
        if not self.drawn:
            return None
        return (
            f"the sampler proposed measured configurations {EXPLORE_AFTER} times in a row: "
            f"{self.drawn} unmeasured configuration(s) were drawn at random instead"
        )
