"""A search space checked against the model before the search starts.

Choices that cannot be built for the model are dropped, each with its reason, so that no
trial is spent on a configuration that can only fail: e.g. ``int4-weight`` group size 128
on SmolLM2-135M, whose 576 input features 128 does not divide. The check follows the
layer shapes through the stages in order (``prune-ffn`` narrows the MLP's down
projection, rounded as it rounds) and tests each group-wise quantization stage against
the layers it would quantize. A backend's own weight formats are checked by the backend
class (:meth:`~wattlm.bench.backends.base.Backend.weight_format_problem`): e.g. ONNX
Runtime's ``int4-b128-acc4``, whose block size 128 does not divide 576 either.

A parameter value is dropped when every combination using it fails; a method when all
of its combinations fail. The dropped choices are listed in the record
(``search.dropped_choices``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wattlm.bench.backends import backend_class
from wattlm.search.space import MethodChoice, SearchSpace, backend_options

#: stage methods that quantize group-wise along the input features (``group_size``)
GROUPWISE = ("int4-weight", "gptq")


@dataclasses.dataclass(frozen=True)
class ModelShapes:
    """What the check needs of a model: each Linear's input features, the MLP width.

    Example:
        >>> shapes = ModelShapes({"q_proj": 576, "down_proj": 1536, "lm_head": 576}, 1536)
        >>> build_problem([{"method": "int4-weight", "group_size": 128}], shapes)
        'group size 128 does not divide q_proj (576 input features)'
        >>> build_problem([{"method": "int4-weight", "group_size": 64}], shapes) is None
        True
    """

    inputs: dict[str, int]
    intermediate_size: int | None = None

    @classmethod
    def of(cls, model: Any) -> ModelShapes:
        """The shapes of a torch model (its ``config.intermediate_size`` if it has one)."""
        from wattlm.compress.quantize_swap import linear_modules

        inputs = {n: m.in_features for n, m in linear_modules(model).items()}
        size = getattr(getattr(model, "config", None), "intermediate_size", None)
        return cls(inputs, size)


def _skipped(name: str, skip: Any) -> bool:
    from wattlm.compress.quantize_swap import matches

    return matches(name, tuple(skip))


def build_problem(stages: list[dict[str, Any]], shapes: ModelShapes) -> str | None:
    """Why ``stages`` cannot be applied to a model of ``shapes`` (``None``: no known reason)."""
    inputs = dict(shapes.inputs)
    for stage in stages:
        method = stage.get("method")
        if method == "prune-ffn" and shapes.intermediate_size:
            size, m = shapes.intermediate_size, int(stage.get("multiple_of", 8))
            keep = max(m, m * int(size * (1 - float(stage.get("ratio", 0.25))) / m + 0.5))
            inputs = {n: (keep if v == size else v) for n, v in inputs.items()}
        if method in GROUPWISE and stage.get("bits", 4) == 4:
            group = int(stage.get("group_size", 32))
            skip = stage.get("skip", ("lm_head",))
            for name, n_in in inputs.items():
                if not _skipped(name, skip) and n_in % group:
                    after = " after pruning" if n_in not in shapes.inputs.values() else ""
                    return (
                        f"group size {group} does not divide {name} ({n_in} input features{after})"
                    )
    return None


def check_space(space: SearchSpace, shapes: ModelShapes) -> tuple[SearchSpace, list[dict]]:
    """``space`` without the choices that cannot be built for the model, and those choices.

    Each dropped choice is ``{"method", "param", "value", "reason"}`` (``param`` and
    ``value`` are ``None`` when the whole method goes); a backend's weight format is
    ``{"method": None, "backend", "param", "value", "reason"}`` (``param`` the space's
    option, e.g. ``weights``; the whole backend goes when none of its formats is left).
    """
    kept_methods: list[MethodChoice] = []
    dropped: list[dict[str, Any]] = []
    for method in space.methods:
        problems = []
        for values in method.combinations():
            problem = build_problem(list(method.resolve(values)), shapes)
            problems.append((values, problem))
        if all(p is not None for _, p in problems):
            reason = next(p for _, p in problems if p)
            dropped.append({"method": method.name, "param": None, "value": None, "reason": reason})
            continue
        params = []
        for name, choices in method.params:
            keep = []
            for value in choices:
                failing = [p for v, p in problems if v[name] == value]
                if failing and all(failing):
                    dropped.append(
                        {"method": method.name, "param": name, "value": value, "reason": failing[0]}
                    )
                else:
                    keep.append(value)
            params.append((name, tuple(keep)))
        kept_methods.append(dataclasses.replace(method, params=tuple(params)))
    backends = _check_backends(space, shapes, dropped)
    if not dropped:
        return space, []
    if not kept_methods:
        from wattlm.errors import WattlmError

        raise WattlmError(
            "no choice of the search space can be built for this model: "
            + "; ".join(f"{d['method']}: {d['reason']}" for d in dropped),
            hint="edit the space's group sizes to divide the model's layer widths",
        )
    if not backends:
        from wattlm.errors import WattlmError

        raise WattlmError(
            "no backend of the search space can run this model: "
            + "; ".join(f"{_choice(d)}: {d['reason']}" for d in dropped if d.get("backend")),
            hint="edit the space's weight formats to fit the model's layer widths",
        )
    names = {m.name: m for m in kept_methods}
    start = tuple(p for p in space.start if _start_kept(p, names, dict(backends)))
    notes = tuple(
        f"dropped from the space for this model: {_choice(d)} ({d['reason']})" for d in dropped
    )
    checked = dataclasses.replace(
        space,
        methods=tuple(kept_methods),
        backends=backends,
        start=start,
        notes=(*space.notes, *notes),
    )
    return checked, dropped


def _check_backends(
    space: SearchSpace, shapes: ModelShapes, dropped: list[dict[str, Any]]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The space's backends without the weight formats that cannot be built (those are
    appended to ``dropped``); a backend none of whose formats is left goes too."""
    kept = []
    for name, formats in space.backends:
        cls = backend_class(name)
        keep = []
        for value in formats:
            problem = cls.weight_format_problem(value, shapes.inputs)
            if problem is None:
                keep.append(value)
                continue
            option = backend_options(name)[0]
            entry = {"method": None, "backend": name, "param": option, "value": value}
            dropped.append({**entry, "reason": problem})
        if formats and not keep:
            continue
        kept.append((name, tuple(keep)))
    return tuple(kept)


def _start_kept(
    point: dict[str, Any],
    methods: dict[str, MethodChoice],
    backends: dict[str, tuple[str, ...]],
) -> bool:
    method = methods.get(point["method"])
    if method is None:
        return False
    backend = point.get("backend")
    if backend is not None:
        if backend not in backends:
            return False
        options = backend_options(backend)
        if options and options[0] in point and point[options[0]] not in backends[backend]:
            return False
    return all(point[p] in values for p, values in method.params if p in point)


def _choice(d: dict[str, Any]) -> str:
    if d.get("backend"):
        return f"{d['backend']} {d['param']}={d['value']}"
    return d["method"] if d["param"] is None else f"{d['method']} {d['param']}={d['value']}"
