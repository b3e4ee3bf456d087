"""The backend interface: run a batch of equal-length prompts, prefill then greedy decode.

A backend keeps the state of the last :meth:`Backend.prefill` (KV cache, or a warm prompt
cache in llama.cpp) so that :meth:`Backend.decode` measures decode work only. The bench
runner wraps each call in its own energy window.

Each backend also answers for itself before it is built (class attributes and class
methods, so the bench runner and the search never switch on backend names): whether it is
installed (:meth:`Backend.is_available`, with the extra that installs it), whether it can
run a given model and config (:meth:`Backend.check`), whether ``--backend auto`` picks it
(:meth:`Backend.auto_selects`), what it runs besides the loaded model
(:meth:`Backend.export`), its constructor arguments (:meth:`Backend.options`), and what
the search must know about it (:attr:`Backend.runs_gguf`, :attr:`Backend.replaces_stages`,
:attr:`Backend.refuses_stages`, and the weight formats of its own it quantizes to:
:meth:`Backend.weight_option`, :meth:`Backend.weight_formats`).
"""

from __future__ import annotations

import contextlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from wattlm.bench.backends.runtime_settings import RuntimeSetting, check_settings
from wattlm.errors import WattlmError

if TYPE_CHECKING:
    from wattlm.bench.config import BenchConfig
    from wattlm.models.load import LoadedModel


#: the GGUF types a search tries on a GGUF backend when its space names none
GGUF_DEFAULT_QTYPES = ("q4_0", "q4_1", "q5_0", "q8_0")


class Backend(ABC):
    """One way of running a model.

    Subclasses set :attr:`name` and implement the three methods. ``prompts`` is a list of
    token-id lists, all of the same length (the bench cuts them to exact lengths).

    Example:
        >>> from wattlm.bench.backends import backend_class
        >>> cls = backend_class("llamacpp")
        >>> cls.requires, cls.install_hint(), cls.isolated, cls.runs_gguf
        ('xllamacpp', 'pip install "wattlm[llamacpp]"', True, True)
        >>> backend_class("torch").is_available()
        True
    """

    name: ClassVar[str] = ""
    #: the Python package the backend imports (``None``: torch, always installed)
    requires: ClassVar[str | None] = None
    #: the ``wattlm[...]`` extra that installs :attr:`requires`
    extra: ClassVar[str | None] = None
    #: measured in a process of its own when wattlm chooses the meter (see
    #: :mod:`wattlm.bench.isolated`); built there from plain :meth:`options`
    isolated: ClassVar[bool] = False
    #: added to a result's notes when this backend ran
    note: ClassVar[str | None] = None
    #: runs a GGUF file at a GGUF type (``qtype``) of its own, which the search exports
    runs_gguf: ClassVar[bool] = False
    #: recipe stages (methods) the backend replaces by its own quantization: dropped
    replaces_stages: ClassVar[frozenset[str]] = frozenset()
    #: recipe stages (methods) whose layers the backend cannot run, and why
    refuses_stages: ClassVar[frozenset[str]] = frozenset()
    refusal: ClassVar[str] = ""
    #: how :meth:`log_probs` gets the runtime's next-token log-probabilities (recorded with
    #: every quality figure it gives); ``None``: the runtime is torch itself, whose
    #: perplexity the bench measures anyway
    log_probs_method: ClassVar[str | None] = None
    #: runtime settings the search may vary (flash attention, KV-cache type…), each with
    #: its default; a candidate or bench config names only the ones not at their default
    runtime_settings: ClassVar[tuple[RuntimeSetting, ...]] = ()

    # -- what the backend says about itself before it is built ------------------------------
    @classmethod
    def weight_option(cls) -> str | None:
        """The search-space option naming this backend's own weight formats (a candidate's
        ``qtype``): ``"qtype"`` (GGUF types) for a GGUF backend; ``None``: the backend runs
        the weights the recipe built.

        Example:
            >>> from wattlm.bench.backends import backend_class
            >>> [backend_class(b).weight_option() for b in ("torch", "llamacpp", "onnxruntime")]
            [None, 'qtype', 'weights']
        """
        return "qtype" if cls.runs_gguf else None

    @classmethod
    def weight_formats(cls, values: Any = None, where: str = "") -> tuple[str, ...]:
        """The weight formats ``values`` names (one value or a list), checked and in their
        canonical spelling; ``None``: the formats a search tries by default.

        Example:
            >>> from wattlm.bench.backends import backend_class
            >>> backend_class("llamacpp").weight_formats(["q4_0", "q8_0"])
            ('q4_0', 'q8_0')
        """
        where = where or cls.name
        if not cls.runs_gguf:
            raise WattlmError(f"{where}: the {cls.name} backend has no weight formats of its own")
        from wattlm.export.gguf_writer import QTYPES

        chosen = GGUF_DEFAULT_QTYPES if values is None else values
        chosen = tuple(chosen) if isinstance(chosen, (list, tuple)) else (chosen,)
        if not chosen or len(set(chosen)) != len(chosen):
            raise WattlmError(f"{where} needs distinct GGUF types, got {list(chosen)}")
        bad = [str(q) for q in chosen if q not in QTYPES]
        if bad:
            raise WattlmError(
                f"{where}: unknown GGUF type(s) {', '.join(bad)}",
                hint=f"choose from: {', '.join(QTYPES)}",
            )
        return tuple(map(str, chosen))

    @classmethod
    def weight_format_problem(cls, value: str, inputs: dict[str, int]) -> str | None:
        """Why weight format ``value`` cannot be built for a model whose ``Linear`` layers
        have these input features (by name), or ``None``."""
        return None

    @classmethod
    def weight_config(cls, value: str | None) -> dict[str, Any]:
        """The :class:`~wattlm.bench.config.BenchConfig` fields that make a bench run this
        backend at weight format ``value`` (``{}``: the format is in the model it is given,
        e.g. a GGUF file exported at that type)."""
        return {}

    @classmethod
    def check_runtime(cls, values: dict[str, Any] | None, where: str = "") -> dict[str, Any]:
        """Runtime settings ``values`` checked against :attr:`runtime_settings`: canonical,
        the ones at their default dropped; WattlmError naming the bad one.

        Example:
            >>> from wattlm.bench.backends import backend_class
            >>> backend_class("llamacpp").check_runtime({"flash_attn": True, "n_batch": 2048})
            {'flash_attn': 'on'}
        """
        found = check_settings(cls.runtime_settings, values, where or cls.name)
        problem = cls.runtime_problem(found)
        if problem:
            raise WattlmError(f"{where or cls.name}: {problem}")
        return found

    @classmethod
    def runtime_of(cls, config: Any) -> dict[str, Any]:
        """This backend's runtime settings in ``config.runtime`` (a config may hold other
        backends' too), checked; ``{}``: the runtime's defaults.

        Example:
            >>> from types import SimpleNamespace
            >>> from wattlm.bench.backends import backend_class
            >>> cfg = SimpleNamespace(runtime={"flash_attn": "on", "inference_precision": "f32"})
            >>> backend_class("llamacpp").runtime_of(cfg), backend_class("torch").runtime_of(cfg)
            ({'flash_attn': 'on'}, {})
        """
        names = {s.name for s in cls.runtime_settings}
        values = getattr(config, "runtime", None) or {}
        return cls.check_runtime({k: v for k, v in values.items() if k in names})

    @classmethod
    def same_run(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Checked settings without those that change nothing given the others (the
        search's candidates use it, so equal runs get equal keys)."""
        return settings

    @classmethod
    def runtime_problem(cls, settings: dict[str, Any]) -> str | None:
        """Why these (checked) runtime settings cannot run together, or ``None``."""
        return None

    @classmethod
    def is_available(cls) -> bool:
        """Whether the package this backend needs is installed."""
        return cls.requires is None or importlib.util.find_spec(cls.requires) is not None

    @classmethod
    def install_hint(cls) -> str:
        """How to install what the backend needs."""
        return f'pip install "wattlm[{cls.extra}]"' if cls.extra else "pip install wattlm"

    @classmethod
    def check_available(cls) -> None:
        """Raise a :class:`~wattlm.errors.WattlmError` (with the install hint) if missing."""
        if not cls.is_available():
            raise WattlmError(
                f"the {cls.name} backend needs the {cls.requires} package",
                hint=cls.install_hint(),
            )

    @classmethod
    def check(cls, config: BenchConfig, loaded: LoadedModel) -> None:
        """Raise a :class:`~wattlm.errors.WattlmError` if this backend cannot run
        ``loaded`` under ``config`` (checked before any work starts)."""
        cls.check_available()

    @classmethod
    def auto_selects(cls, loaded: LoadedModel) -> bool:
        """Whether ``--backend auto`` runs this backend on ``loaded``."""
        return False

    @classmethod
    def export(
        cls, loaded: LoadedModel, config: BenchConfig, workdir: Path
    ) -> dict[str, Any] | None:
        """Write what this backend runs instead of ``loaded`` into ``workdir`` (e.g. an
        ONNX graph) and describe it for the result; ``None``: it runs ``loaded`` itself."""
        return None

    @classmethod
    def options(
        cls,
        loaded: LoadedModel,
        config: BenchConfig,
        batch_size: int,
        exported: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments of the constructor for one (model, config, batch) run."""
        raise NotImplementedError(f"{cls.__name__}.options")

    @classmethod
    def run_dtype(cls, config: BenchConfig, details: dict[str, Any]) -> str:
        """The weights' type as this backend runs them (a run's ``dtype``)."""
        return config.dtype

    @classmethod
    def incompatible(cls, methods: set[str]) -> str | None:
        """Why recipe stages ``methods`` cannot run on this backend, or ``None``.

        Example:
            >>> from wattlm.bench.backends import backend_class
            >>> backend_class("llamacpp").incompatible({"lowrank", "prune"})
            'lowrank layers cannot be exported to GGUF for llama.cpp'
        """
        bad = sorted(methods & cls.refuses_stages)
        return f"{', '.join(bad)} {cls.refusal}" if bad else None

    @classmethod
    def runs_an_export(cls) -> bool:
        """Whether the backend runs an export of the model (:meth:`export`) rather than
        the loaded model itself.

        Example:
            >>> from wattlm.bench.backends import backend_class
            >>> backend_class("onnxruntime").runs_an_export(), backend_class("torch").runs_an_export()
            (True, False)
        """
        return cls.export.__func__ is not Backend.export.__func__

    @classmethod
    @contextlib.contextmanager
    def log_probs(
        cls, loaded: LoadedModel, config: BenchConfig, exported: dict[str, Any] | None = None
    ) -> Iterator[Callable[[list[int]], torch.Tensor]]:
        """A scorer computed by this runtime: window token ids -> next-token
        log-probabilities ``[window, vocab]`` (float32), for perplexity and fidelity
        measured on the runtime that serves. Only for backends with a
        :attr:`log_probs_method`.

        Example:
            >>> from wattlm.bench.backends import backend_class
            >>> backend_class("llamacpp").log_probs_method.startswith("llama.cpp")
            True
        """
        raise NotImplementedError(f"{cls.__name__} has no runtime scorer")
        yield  # pragma: no cover - makes this a generator

    @abstractmethod
    def prefill(self, prompts: list[list[int]]) -> list[int]:
        """Process the prompts and return the first greedy token of each sequence."""

    @abstractmethod
    def decode(self, steps: int) -> list[list[int]]:
        """Continue the last prefill greedily for ``steps`` forward passes per sequence.

        Returns exactly ``steps`` new token ids per sequence, all produced inside this
        call (so tokens/s and joules/token are per decode forward pass).
        """

    def generate(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        """Greedy-generate exactly ``new_tokens`` tokens per prompt (EOS ignored)."""
        first = self.prefill(prompts)
        if new_tokens == 1:
            return [[t] for t in first]
        rest = self.decode(new_tokens - 1)
        return [[f, *r] for f, r in zip(first, rest, strict=True)]

    def describe(self) -> dict[str, Any]:
        """Settings of this backend saved in the result (threads, dtype, library version)."""
        return {"name": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
