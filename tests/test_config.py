"""The one config base: every config class of the package round-trips through its dict and
JSON forms, and unknown keys are one error listing the valid ones."""

import dataclasses
import importlib
import json
import pkgutil
from dataclasses import dataclass, field

import pytest

import wattlm
from wattlm._config import (
    Config,
    check_choice,
    check_fraction,
    check_int,
    check_keys,
    check_positive,
    check_version,
)
from wattlm.bench.config import BenchConfig
from wattlm.compress.base import CompressConfig
from wattlm.compress.lowrank import LowRankConfig
from wattlm.compress.precision import CastConfig
from wattlm.compress.quantize import Int4WeightConfig
from wattlm.compress.recipe import Recipe
from wattlm.compress.structured import HeadPruneConfig, LayerDropConfig
from wattlm.errors import WattlmError
from wattlm.search.config import OptimizeConfig, StageSettings
from wattlm.search.space import SearchSpace
from wattlm.serve.config import ServeConfig
from wattlm.serve.loadtest import LoadConfig
from wattlm.serve.slotsweep import SweepConfig
from wattlm.train.config import DistillConfig, FinetuneConfig, QatConfig, RecipeConfig
from wattlm.training.options import DataConfig, TrainOptions


def _all_config_classes() -> list[type[Config]]:
    """Every subclass of :class:`Config` defined in the package (all modules imported)."""
    for module in pkgutil.walk_packages(wattlm.__path__, "wattlm."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[type[Config]] = set()
    todo = [Config]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("wattlm.") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


#: bases that only dispatch to their subclasses (by ``method`` or ``recipe``)
ABSTRACT = {CompressConfig, RecipeConfig}

#: an instance with non-default values where it matters; required for classes without
#: defaults for every field
EXAMPLES = {
    BenchConfig: BenchConfig(
        backends=("torch", "llamacpp"), batch_sizes=(1, 4), threads=2, dtype="bfloat16"
    ),
    OptimizeConfig: OptimizeConfig(
        budget="1%", time_budget_s="90s", screen=StageSettings(repeats=3), ray_workers=2
    ),
    StageSettings: StageSettings(prompt_tokens=64, repeats=7),
    CastConfig: CastConfig(dtype="float16", keep=("lm_head", "*.embed_tokens")),
    Int4WeightConfig: Int4WeightConfig(
        group_size=64, skip=("lm_head",), embedding_dtype="bfloat16"
    ),
    LowRankConfig: LowRankConfig(rank_ratio=0.5, ranks=(("model.layers.0.mlp.up_proj", 8),)),
    HeadPruneConfig: HeadPruneConfig(heads=1),
    LayerDropConfig: LayerDropConfig(layers=(2, 3)),
    Recipe: Recipe(
        stages=(LayerDropConfig(layers=(1,)), CastConfig(dtype="bfloat16")),
        name="drop-then-bf16",
        description="one layer less, then bf16",
    ),
    SearchSpace: SearchSpace.from_dict(
        {
            "name": "tiny",
            "methods": {
                "none": [],
                "int4": {
                    "stages": [{"method": "int4-weight", "group_size": "$g"}],
                    "params": {"g": [32, 128]},
                },
            },
            "backends": {"torch": {}, "llamacpp": {"qtype": ["q4_0"]}},
            "batch_sizes": [1, 8],
            "threads": [1, 2],
            "start": [{"method": "int4", "g": 32, "backend": "torch"}],
        }
    ),
    TrainOptions: TrainOptions(lr=1e-4, max_steps=20, epochs=None, precision="bf16", threads=2),
    DataConfig: DataConfig("wiki-sample", seq_len=64, max_train_samples=32),
    FinetuneConfig: FinetuneConfig(
        model="smollm2-135m",
        data=DataConfig("wiki-sample", seq_len=64),
        options=TrainOptions(max_steps=5, grad_accum=2),
        task="causal-lm",
        keep_sparsity=True,
    ),
    DistillConfig: DistillConfig(teacher="runs/t", student="every:2", alpha=0.25),
    QatConfig: QatConfig(model="runs/s", scheme="int8-dynamic", skip=("classifier",)),
    ServeConfig: ServeConfig(model="model.gguf", slots=2, threads=2, meter="estimate"),
    LoadConfig: LoadConfig(url="http://127.0.0.1:8000", rates=(1.0, 2.0), prompt_words=(8, 16)),
    SweepConfig: SweepConfig(model="model.gguf", slots=(1, 2), slo_p99_ms=500.0, threads=2),
}

CONCRETE = [c for c in _all_config_classes() if c not in ABSTRACT]


def _example(cls: type[Config]) -> Config:
    if cls in EXAMPLES:
        return EXAMPLES[cls]
    try:
        return cls()
    except (TypeError, WattlmError) as err:
        pytest.fail(f"{cls.__qualname__} needs an entry in EXAMPLES of tests/test_config.py: {err}")


def test_discovery_finds_the_configs_of_every_layer():
    names = {c.__qualname__ for c in CONCRETE}
    expected = {"BenchConfig", "CastConfig", "Recipe", "SearchSpace", "OptimizeConfig"}
    assert expected | {"StageSettings", "TrainOptions", "DataConfig", "QatConfig"} <= names
    assert len(CONCRETE) >= 20


@pytest.mark.parametrize("cls", CONCRETE, ids=lambda c: c.__qualname__)
def test_every_config_round_trips_through_dict_and_json(cls):
    cfg = _example(cls)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    data = cfg.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready: no tuples, no objects
    again = cls.from_dict(json.loads(json.dumps(data)))
    assert type(again) is cls
    assert again == cfg
    assert again.to_dict() == data
    assert cls.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("cls", CONCRETE, ids=lambda c: c.__qualname__)
def test_every_config_refuses_unknown_keys_listing_the_valid_ones(cls):
    data = _example(cls).to_dict()
    with pytest.raises(WattlmError) as err:
        cls.from_dict({**data, "no_such_key": 1, "another_one": 2})
    assert "unknown key(s) in " in err.value.message
    assert err.value.message.endswith(": another_one, no_such_key")
    assert err.value.hint.startswith("valid keys: ")
    listed = set(err.value.hint.removeprefix("valid keys: ").split(", "))
    assert set(data) - {"method", "recipe", "version"} <= listed


def test_unknown_key_message_in_full():
    with pytest.raises(WattlmError) as err:
        BenchConfig.from_dict({"repeat": 3, "batch_size": 1})
    assert err.value.message == "unknown key(s) in bench config: batch_size, repeat"
    assert err.value.hint.startswith("valid keys: backends, batch_sizes, cv_threshold, data,")
    with pytest.raises(WattlmError, match=r"unknown key\(s\) in cast config: dtyp"):
        CompressConfig.from_dict({"method": "cast", "dtyp": "float16"})
    with pytest.raises(WattlmError, match=r"unknown key\(s\) in options: nope"):
        FinetuneConfig.from_dict({**FinetuneConfig().to_dict(), "options": {"nope": 1}})


def test_a_newer_version_is_refused_before_its_unknown_keys():
    for cls in (BenchConfig, OptimizeConfig):
        with pytest.raises(WattlmError, match="version 2 is newer than this wattlm reads"):
            cls.from_dict({"version": 2, "a_future_key": 1})
    data = QatConfig().to_dict()
    with pytest.raises(WattlmError, match="qat config version 3 is newer") as err:
        QatConfig.from_dict({**data, "version": 3})
    assert err.value.hint == "upgrade wattlm"


def test_nested_configs_and_tuples_are_rebuilt_from_json():
    cfg = OptimizeConfig.from_json(
        json.dumps({"screen": {"repeats": 4}, "full": {"prompt_tokens": 128}})
    )
    assert cfg.screen == StageSettings(repeats=4) and cfg.full.prompt_tokens == 128
    lowrank = CompressConfig.from_dict(
        {"method": "lowrank", "rank_ratio": 0.5, "ranks": [["a", 4], ["b", 2]]}
    )
    assert lowrank.ranks == (("a", 4), ("b", 2))
    assert BenchConfig.from_dict({"batch_sizes": [2, 4]}).batch_sizes == (2, 4)


def test_a_config_defined_anywhere_gets_the_round_trip():
    @dataclass(frozen=True)
    class Inner(Config):
        sizes: tuple[int, ...] = (1,)

    @dataclass(frozen=True)
    class Outer(Config):
        config_name = "outer"
        inner: Inner = field(default_factory=Inner)
        note: str | None = None

    cfg = Outer(inner=Inner(sizes=(2, 3)), note="x")
    assert cfg.to_dict() == {"inner": {"sizes": [2, 3]}, "note": "x"}
    assert Outer.from_json(cfg.to_json()) == cfg
    with pytest.raises(WattlmError, match=r"unknown key\(s\) in inner: size \(valid keys: sizes\)"):
        Outer.from_dict({"inner": {"size": [1]}})
    with pytest.raises(WattlmError, match="outer must be a mapping, got list"):
        Outer.from_dict([1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_int("repeats", True), "repeats must be an integer >= 1, got True"),
        (lambda: check_int("warm-up", -1, 0), "warm-up must be an integer >= 0, got -1"),
        (lambda: check_int("threads", 2.0), "threads must be an integer >= 1, got 2.0"),
        (lambda: check_positive("lr", 0), "lr must be > 0, got 0"),
        (lambda: check_positive("lr", float("inf")), "lr must be > 0, got inf"),
        (lambda: check_fraction("damp", 1.5), r"damp must be in \(0, 1\], got 1.5"),
        (
            lambda: check_choice("sampler", "x", ("tpe",), "say why"),
            r"\(say why; choose from: tpe\)",
        ),
        (lambda: check_version(1.5, 1, "bench config"), "version must be an integer"),
        (lambda: check_keys("text", ("a",), "space"), "space must be a mapping, got str"),
    ],
)
def test_validators_refuse(call, message):
    with pytest.raises(WattlmError, match=message):
        call()


def test_validators_accept_the_edges():
    check_int("warm-up", 0, 0)
    check_positive("lr", 1e-12)
    check_fraction("damp", 1)
    check_choice("sampler", "tpe", ("tpe",))
    check_version(1, 1)
    assert check_keys({"a": 1}, ("a", "b"), "x") == {"a": 1}
