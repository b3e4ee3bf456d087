"""The search space: compression methods with their parameters, backends, batch sizes and
threads, read from YAML and validated before any work starts.

```yaml
name: my-space
methods:                       # compression choices; each one is a list of recipe stages
  none: []
  bf16: [{method: cast, dtype: bfloat16}]
  int4-weight:
    stages: [{method: int4-weight, group_size: $group_size}]
    params: {group_size: [32, 64, 128]}      # "$name" in a stage takes these values
backends:
  torch: {}
  llamacpp: {qtype: [q4_0, q4_1, q8_0],       # GGUF type written for llama.cpp
             flash_attn: [auto, on]}           # runtime settings (see runtime_options)
  onnxruntime: {weights: [fp32, int4-b32, int8]}  # ONNX Runtime's own weight format
batch_sizes: [1, 8]
threads: auto                  # or a list; auto = 1, 2, 4, … up to the usable cores
start:                         # evaluated first (after the baseline); omitted keys are sampled
  - {method: int4-weight, group_size: 32, backend: torch, batch_size: 8}
```

Shipped spaces (``default``, ``quick``, ``full``) live in ``src/wattlm/search/spaces/``;
``wattlm optimize --space quick`` names one, ``--space my.yaml`` reads a copy you edited.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from wattlm._config import Config, check_keys, is_int
from wattlm.bench.backends import BACKEND_NAMES, backend_class
from wattlm.bench.backends.base import GGUF_DEFAULT_QTYPES
from wattlm.errors import WattlmError
from wattlm.search.candidate import Candidate, canonical

SPACE_KEYS = ("name", "description", "methods", "backends", "batch_sizes", "threads", "start")
METHOD_KEYS = ("stages", "params", "description")
DEFAULT_QTYPES = GGUF_DEFAULT_QTYPES
SHIPPED = ("default", "quick", "full")


def backend_options(name: str) -> tuple[str, ...]:
    """The options a space may give backend ``name``: the list of its own weight formats
    (a candidate's ``qtype``), under the name the backend class gives it.

    Example:
        >>> backend_options("llamacpp"), backend_options("onnxruntime"), backend_options("torch")
        (('qtype',), ('weights',), ())
    """
    option = backend_class(name).weight_option()
    return (option,) if option else ()


def runtime_options(name: str) -> tuple[str, ...]:
    """The runtime settings a space may vary for backend ``name`` (each a list of values;
    a setting left out stays at the runtime's default).

    Example:
        >>> runtime_options("llamacpp"), runtime_options("torch")
        (('n_batch', 'n_ubatch', 'flash_attn', 'kv_cache', 'speculative', 'spec_ngram', 'spec_draft'), ())
    """
    return tuple(s.name for s in backend_class(name).runtime_settings)


def _runtime_values(name: str, setting: str, given: Any, where: str) -> tuple[Any, ...]:
    """The values of one runtime setting, checked by the backend, canonical and distinct."""
    declared = {s.name: s for s in backend_class(name).runtime_settings}[setting]
    values = tuple(declared.check(v, where) for v in _choices(given, where))
    if not values or len(set(values)) != len(values):
        raise WattlmError(f"{where}: {setting} needs distinct values, got {list(values)}")
    return values


def _runtime_combinations(
    settings: tuple[tuple[str, tuple[Any, ...]], ...],
) -> list[dict[str, Any]]:
    names = [n for n, _ in settings]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(v for _, v in settings))
    ]


def weight_param(backend: str) -> str:
    """The Optuna parameter of a backend's own weight format, e.g. ``llamacpp.qtype``."""
    return f"{backend}.{backend_options(backend)[0]}"


#: Optuna parameter names of the fixed dimensions (``P_QTYPE``: llama.cpp's weight format)
P_METHOD, P_BACKEND, P_QTYPE, P_BATCH, P_THREADS = (
    "method",
    "backend",
    "llamacpp.qtype",
    "batch_size",
    "threads",
)


def _choices(value: Any, where: str) -> tuple[Any, ...]:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if not values:
        raise WattlmError(f"{where} needs at least one value")
    for v in values:
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise WattlmError(f"{where}: values must be numbers or strings, got {v!r}")
    if len(set(values)) != len(values):
        raise WattlmError(f"{where} lists a value twice: {list(values)}")
    return values


def _positive_ints(value: Any, where: str) -> tuple[int, ...]:
    values = _choices(value, where)
    for v in values:
        if not is_int(v) or v < 1:
            raise WattlmError(f"{where} must be integers >= 1, got {v!r}")
    return values


def auto_threads(cores: int | None = None) -> tuple[int, ...]:
    """1, 2, 4, … below the core count, then the core count itself.

    Example:
        >>> auto_threads(2), auto_threads(6)
        ((1, 2), (1, 2, 4, 6))
    """
    cores = cores or len(os.sched_getaffinity(0))
    out, t = [], 1
    while t < cores:
        out.append(t)
        t *= 2
    return (*out, cores)


@dataclass(frozen=True)
class MethodChoice:
    """One value of the ``method`` dimension: stage templates and their parameters."""

    name: str
    stages: tuple[dict[str, Any], ...] = ()
    params: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    description: str = ""

    def resolve(self, values: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        """The stages with every ``$param`` replaced by its value."""
        return tuple({k: _substitute(v, values) for k, v in stage.items()} for stage in self.stages)

    def combinations(self) -> list[dict[str, Any]]:
        names = [n for n, _ in self.params]
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(c for _, c in self.params))
        ]


def _substitute(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        return values[value[1:]]
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str) and value.startswith("$"):
        return {value[1:]}
    if isinstance(value, (list, tuple)):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    return set()


def _method(name: str, spec: Any, source: str) -> MethodChoice:
    where = f"method {name!r} of {source}"
    if spec is None:
        spec = []
    if isinstance(spec, list):
        spec = {"stages": spec}
    spec = check_keys(spec, METHOD_KEYS, where)
    stages = spec.get("stages") or []
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        raise WattlmError(f"{where}: 'stages' must be a list of recipe stages")
    params_in = spec.get("params") or {}
    if not isinstance(params_in, dict):
        raise WattlmError(f"{where}: 'params' must map parameter names to lists of values")
    params = tuple((str(p), _choices(v, f"{where}, parameter {p!r}")) for p, v in params_in.items())
    used = _placeholders(stages)
    declared = {p for p, _ in params}
    if used - declared:
        raise WattlmError(
            f"{where} uses undeclared parameter(s): {', '.join(sorted(used - declared))}",
            hint="declare their values under 'params'",
        )
    if declared - used:
        raise WattlmError(
            f"{where} declares parameter(s) no stage uses: {', '.join(sorted(declared - used))}"
        )
    choice = MethodChoice(str(name), tuple(stages), params, str(spec.get("description", "")))
    _check_stages(choice, where)
    return choice


def _check_stages(choice: MethodChoice, where: str) -> None:
    """Every parameter combination must give valid recipe stages."""
    from wattlm.compress.recipe import Recipe

    for values in choice.combinations():
        if not choice.stages:
            continue
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        try:
            Recipe.from_dict({"stages": [dict(s) for s in choice.resolve(values)]}, source=where)
        except WattlmError as err:
            at = f" with {shown}" if shown else ""
            raise WattlmError(f"{err.message}{at}", hint=err.hint) from None


@dataclass(frozen=True)
class SearchSpace(Config):
    """Compression methods × backends × batch sizes × threads, plus start points.

    Its dict form is the YAML form (:meth:`to_dict`), not one key per field.

    Example:
        >>> space = SearchSpace.from_dict({"methods": {"none": []}, "threads": [1]})
        >>> SearchSpace.from_dict(space.to_dict()) == space
        True
    """

    methods: tuple[MethodChoice, ...]
    backends: tuple[tuple[str, tuple[str, ...]], ...] = (("torch", ()),)
    batch_sizes: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = (1,)
    start: tuple[dict[str, Any], ...] = ()
    #: per backend, the runtime settings the space varies: ``(backend, ((setting, values), …))``
    runtime: tuple[tuple[str, tuple[tuple[str, tuple[Any, ...]], ...]], ...] = ()
    name: str = "space"
    description: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)

    # -- reading ----------------------------------------------------------------------
    config_name = "search space"

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str = "search space", what: str | None = None
    ) -> SearchSpace:
        """Read and fully validate a space in its YAML form; ``source`` names it in errors."""
        source = what or source
        data = check_keys(data, SPACE_KEYS, source)
        methods_in = data.get("methods")
        if not isinstance(methods_in, dict) or not methods_in:
            raise WattlmError(f"{source} needs a non-empty 'methods' mapping")
        methods = tuple(_method(str(n), s, source) for n, s in methods_in.items())
        backends_in = data.get("backends", {"torch": {}})
        if isinstance(backends_in, list):
            backends_in = {str(b): {} for b in backends_in}
        backends_in = check_keys(backends_in, BACKEND_NAMES, f"'backends' of {source}")
        if not backends_in:
            raise WattlmError(f"{source} needs at least one backend")
        backends, runtime = [], []
        for name, opts in backends_in.items():
            where = f"backend {name!r} of {source}"
            opts = check_keys(opts or {}, (*backend_options(name), *runtime_options(name)), where)
            qtypes: tuple[str, ...] = ()
            for option in backend_options(name):  # the backend's own weight formats
                given = _choices(opts[option], where) if option in opts else None
                qtypes = backend_class(name).weight_formats(given, where)
            backends.append((name, qtypes))
            settings = tuple(
                (o, _runtime_values(name, o, opts[o], where))
                for o in runtime_options(name)
                if o in opts
            )
            if settings:
                runtime.append((name, settings))
        threads_in = data.get("threads", "auto")
        threads = (
            auto_threads()
            if threads_in == "auto"
            else _positive_ints(threads_in, f"'threads' of {source}")
        )
        space = cls(
            methods=methods,
            backends=tuple(backends),
            runtime=tuple(runtime),
            batch_sizes=_positive_ints(data.get("batch_sizes", [1]), f"'batch_sizes' of {source}"),
            threads=threads,
            name=str(data.get("name", "space")),
            description=str(data.get("description", "")).strip(),
        )
        start = data.get("start") or []
        if not isinstance(start, list):
            raise WattlmError(f"'start' of {source} must be a list of parameter mappings")
        return replace(
            space, start=tuple(space._check_start(s, i, source) for i, s in enumerate(start))
        )

    def _check_start(self, point: Any, i: int, source: str) -> dict[str, Any]:
        where = f"start point {i + 1} of {source}"
        if not isinstance(point, dict) or "method" not in point:
            raise WattlmError(f"{where} needs at least a 'method'")
        method = self.method(point["method"], where)
        options = tuple(dict.fromkeys(o for b, _ in self.backends for o in backend_options(b)))
        settings = tuple(dict.fromkeys(o for _, ss in self.runtime for o, _ in ss))
        valid = ("method", *(p for p, _ in method.params), "backend", *options, *settings)
        check_keys(point, (*valid, "batch_size", "threads"), where)
        point = dict(point)
        backend = point.get("backend")
        for setting in settings:
            if setting in point and setting not in dict(dict(self.runtime).get(backend, ())):
                raise WattlmError(
                    f"{where}: {setting} is a runtime setting the space varies for "
                    f"{', '.join(b for b, ss in self.runtime if setting in dict(ss))}; "
                    f"the point's backend is {backend!r}",
                    hint="name that backend in the point, or drop the setting",
                )
        for option in options:
            if option in point and backend is not None and option not in backend_options(backend):
                raise WattlmError(
                    f"{where}: backend {backend!r} takes no {option!r}",
                    hint=f"its weight formats: {', '.join(backend_options(backend)) or 'none'}",
                )
            if option in point and backend in backend_options_of(self, option):
                # the backend's canonical spelling (``int4`` is ``int4-b32-acc4``)
                point[option] = backend_class(backend).weight_formats(point[option], where)[0]
        for key, value in point.items():
            if value not in self._dimension(key, method, point.get("backend")):
                raise WattlmError(
                    f"{where}: {key}={value!r} is not in the space",
                    hint=f"choose from: {', '.join(map(str, self._dimension(key, method, point.get('backend'))))}",
                )
        return dict(point)

    def _dimension(self, key: str, method: MethodChoice, backend: str | None) -> tuple[Any, ...]:
        fixed = {
            "method": tuple(m.name for m in self.methods),
            "backend": tuple(b for b, _ in self.backends),
            "batch_size": self.batch_sizes,
            "threads": self.threads,
        }
        varied = [(b, dict(ss)[key]) for b, ss in self.runtime if key in dict(ss)]
        if varied:  # a runtime setting: its values on the point's backend (or on any)
            chosen = [v for b, v in varied if b == backend] or [v for _, v in varied]
            return tuple(dict.fromkeys(x for v in chosen for x in v))
        owners = backend_options_of(self, key)
        if owners:  # a weight-format option: the formats of that backend (or of all its owners)
            chosen = (backend,) if backend in owners else owners
            return tuple(dict.fromkeys(q for b, qs in self.backends if b in chosen for q in qs))
        return fixed[key] if key in fixed else dict(method.params)[key]

    def method(self, name: str, where: str = "search space") -> MethodChoice:
        for m in self.methods:
            if m.name == name:
                return m
        raise WattlmError(
            f"{where}: unknown method {name!r}",
            hint=f"the space has: {', '.join(m.name for m in self.methods)}",
        )

    def to_dict(self) -> dict[str, Any]:
        """The resolved space (``threads: auto`` expanded), as it would be written in YAML."""
        return {
            "name": self.name,
            "description": self.description,
            "methods": {
                m.name: {
                    "stages": [dict(s) for s in m.stages],
                    "params": {p: list(v) for p, v in m.params},
                }
                for m in self.methods
            },
            "backends": {
                b: {
                    **{o: list(q) for o in backend_options(b)},
                    **{o: list(v) for o, v in dict(self.runtime).get(b, ())},
                }
                for b, q in self.backends
            },
            "batch_sizes": list(self.batch_sizes),
            "threads": list(self.threads),
            "start": [dict(s) for s in self.start],
        }

    def without_backend(self, backend: str, reason: str) -> SearchSpace:
        """The space minus one backend (e.g. llama.cpp when ``xllamacpp`` is missing)."""
        if backend not in dict(self.backends):
            return self
        left = tuple(b for b in self.backends if b[0] != backend)
        if not left:
            raise WattlmError(f"no backend left to search: {reason}")
        start = tuple(s for s in self.start if s.get("backend") != backend)
        runtime = tuple(r for r in self.runtime if r[0] != backend)
        note = f"backend {backend} left out of the search: {reason}"
        return replace(self, backends=left, start=start, runtime=runtime, notes=(*self.notes, note))

    # -- sampling -----------------------------------------------------------------------
    def suggest(self, trial: Any) -> Candidate:
        """Define-by-run: ask ``trial`` (an Optuna trial) for one candidate.

        Conditional parameters are asked only when they apply: ``<method>.<param>`` for
        the chosen method, ``<backend>.<option>`` (``llamacpp.qtype``,
        ``onnxruntime.weights``) only on a backend with weight formats of its own.
        """
        method = self.method(trial.suggest_categorical(P_METHOD, [m.name for m in self.methods]))
        values = {
            p: trial.suggest_categorical(f"{method.name}.{p}", list(c)) for p, c in method.params
        }
        backend = trial.suggest_categorical(P_BACKEND, [b for b, _ in self.backends])
        qtype = None
        if backend_options(backend):
            formats = list(dict(self.backends)[backend])
            qtype = trial.suggest_categorical(weight_param(backend), formats)
        settings = {
            o: trial.suggest_categorical(f"{backend}.{o}", list(v))
            for o, v in dict(self.runtime).get(backend, ())
        }
        batch = trial.suggest_categorical(P_BATCH, list(self.batch_sizes))
        threads = trial.suggest_categorical(P_THREADS, list(self.threads))
        return Candidate(
            method.name, values, method.resolve(values), backend, qtype, batch, threads, settings
        )

    def candidates(self) -> list[Candidate]:
        """Every runnable candidate once (incompatible ones and repeats left out), in order."""
        return [c for _, c in self.points()]

    def points(self) -> list[tuple[dict[str, Any], Candidate]]:
        """Every runnable candidate once, in order, with the Optuna parameters that make
        :meth:`suggest` return it (for ``study.enqueue_trial``).

        Example:
            >>> space = load_space("default")
            >>> params, cand = space.points()[0]
            >>> params
            {'method': 'none', 'backend': 'torch', 'batch_size': 1, 'threads': 1}
            >>> cand.params() == params
            True
        """
        out: dict[str, tuple[dict[str, Any], Candidate]] = {}
        for method in self.methods:
            for values, (backend, qtypes) in itertools.product(
                method.combinations(), self.backends
            ):
                stages = method.resolve(values)
                settings = _runtime_combinations(dict(self.runtime).get(backend, ()))
                for qtype, batch, threads, runtime in itertools.product(
                    qtypes or (None,), self.batch_sizes, self.threads, settings
                ):
                    c = Candidate(
                        method.name, values, stages, backend, qtype, batch, threads, runtime
                    )
                    if c.incompatible() is not None or c.key() in out:
                        continue
                    params = {P_METHOD: method.name}
                    params.update({f"{method.name}.{p}": v for p, v in values.items()})
                    params[P_BACKEND] = backend
                    if qtype is not None:
                        params[weight_param(backend)] = qtype
                    params.update({f"{backend}.{o}": v for o, v in runtime.items()})
                    params.update({P_BATCH: batch, P_THREADS: threads})
                    out[c.key()] = (params, c)
        return list(out.values())

    def start_params(self) -> list[dict[str, Any]]:
        """Start points as Optuna parameter dicts (for ``study.enqueue_trial``)."""
        out = []
        for point in self.start:
            params = {}
            for key, value in point.items():
                owners = backend_options_of(self, key)
                if key in runtime_options(point.get("backend", "torch")):
                    params[f"{point['backend']}.{key}"] = value
                elif owners:  # a weight format: of the point's backend, else of its owner
                    backend = point.get("backend") if point.get("backend") in owners else owners[0]
                    params[weight_param(backend)] = value
                elif key in (P_METHOD, P_BACKEND, P_BATCH, P_THREADS):
                    params[key] = value
                else:
                    params[f"{point['method']}.{key}"] = value
            out.append(params)
        return out

    def start_candidates(self) -> list[Candidate]:
        """Start points that name every dimension, as candidates (for the grid sampler)."""
        out = []
        for point in self.start:
            method = self.method(point["method"])
            values = {p: point.get(p) for p, _ in method.params}
            backend = point.get("backend")
            needed = [backend, point.get("batch_size"), point.get("threads"), *values.values()]
            options = backend_options(backend) if backend in BACKEND_NAMES else ()
            qtype = point.get(options[0]) if options else None
            if options:
                needed.append(qtype)
            if any(v is None for v in needed):
                continue
            out.append(
                Candidate(
                    method.name,
                    values,
                    method.resolve(values),
                    backend,
                    qtype,
                    point["batch_size"],
                    point["threads"],
                    {o: point[o] for o in runtime_options(backend) if o in point},
                )
            )
        return out

    def fingerprint(self) -> str:
        return canonical(self.to_dict())


def backend_options_of(space: SearchSpace, option: str) -> tuple[str, ...]:
    """The backends of ``space`` whose weight formats are given under ``option``."""
    return tuple(b for b, _ in space.backends if option in backend_options(b))


def space_file(spec: str) -> Path:
    """The YAML file a ``--space`` value names: a shipped space or a path."""
    if spec in SHIPPED:
        return Path(
            str(resources.files("wattlm.search").joinpath("spaces").joinpath(f"{spec}.yaml"))
        )
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WattlmError(
            f"search space not found: {spec}",
            hint=f"pass a YAML file or a shipped space: {', '.join(SHIPPED)}",
        )
    return path


def load_space(spec: str = "default") -> SearchSpace:
    """Read and fully validate a search space (a shipped name or a YAML file)."""
    import yaml

    from wattlm._yaml import load_yaml

    path = space_file(spec)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise WattlmError(f"{path} is not valid YAML: {err}".splitlines()[0]) from None
    source = spec if spec in SHIPPED else str(path)
    return SearchSpace.from_dict(data, source=source)
