"""Search spaces: YAML validation up front, shipped spaces, candidates and their mapping."""

from pathlib import Path

import optuna
import pytest

from wattlm.errors import WattlmError
from wattlm.search.candidate import Candidate
from wattlm.search.space import SHIPPED, SearchSpace, auto_threads, load_space, space_file

REPO = Path(__file__).resolve().parents[2]


def _space(**over):
    data = {
        "methods": {
            "none": [],
            "int4-weight": {
                "stages": [{"method": "int4-weight", "group_size": "$group_size"}],
                "params": {"group_size": [32, 128]},
            },
            "lowrank": [{"method": "lowrank", "rank_ratio": 0.5}],
        },
        "backends": {"torch": {}, "llamacpp": {"qtype": ["q4_0", "q8_0"]}},
        "batch_sizes": [1, 8],
        "threads": [1, 2],
    }
    data.update(over)
    return SearchSpace.from_dict(data, source="test space")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spaces_load_from_the_package_data(name):
    space = load_space(name)
    assert space.candidates()
    assert space_file(name).parent.parts[-3:] == ("wattlm", "search", "spaces")


def test_the_package_data_is_the_only_copy_of_the_shipped_spaces():
    assert not (REPO / "search-spaces").exists()
    in_package = {p.stem for p in (REPO / "src/wattlm/search/spaces").glob("*.yaml")}
    assert set(SHIPPED) <= in_package


def test_unknown_top_level_keys_are_one_error_listing_the_valid_ones():
    with pytest.raises(WattlmError) as err:
        _space(batch=[1], thread=[2])
    assert err.value.message == "unknown key(s) in test space: batch, thread"
    assert "methods" in err.value.hint and "batch_sizes" in err.value.hint


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"backends": {"vllm": {}}}, "unknown key(s) in 'backends' of test space: vllm"),
        ({"backends": {"llamacpp": {"qtypes": ["q4_0"]}}}, "unknown key(s) in backend 'llamacpp'"),
        ({"backends": {"llamacpp": {"qtype": ["q3_k"]}}}, "unknown GGUF type(s) q3_k"),
        ({"batch_sizes": [0]}, "integers >= 1"),
        ({"threads": []}, "needs at least one value"),
        ({"methods": {}}, "non-empty 'methods'"),
        (
            {"methods": {"x": [{"method": "int5-weight"}]}},
            "unknown compression method 'int5-weight'",
        ),
        (
            {"methods": {"x": {"stages": [{"method": "int4-weight", "group_size": "$g"}]}}},
            "undeclared parameter(s): g",
        ),
        (
            {"methods": {"x": {"stages": [{"method": "cast"}], "params": {"g": [1]}}}},
            "no stage uses: g",
        ),
        (
            {
                "methods": {
                    "x": {
                        "stages": [{"method": "int4-weight", "group_size": "$g"}],
                        "params": {"g": [32, 48]},
                    }
                }
            },
            "with g=48",
        ),
        ({"methods": {"x": {"stage": []}}}, "unknown key(s) in method 'x'"),
        ({"start": [{"method": "none", "batch_size": 3}]}, "batch_size=3 is not in the space"),
        ({"start": [{"method": "nope"}]}, "unknown method 'nope'"),
        ({"start": [{"method": "none", "color": 1}]}, "unknown key(s) in start point 1"),
    ],
)
def test_invalid_spaces(over, message):
    with pytest.raises(WattlmError) as err:
        _space(**over)
    assert message in err.value.message


def test_missing_space_file_names_the_shipped_ones(tmp_path):
    with pytest.raises(WattlmError, match="search space not found") as err:
        load_space(str(tmp_path / "nope.yaml"))
    assert "default, quick, full" in err.value.hint


def test_candidates_collapse_what_runs_the_same_and_leave_out_the_impossible():
    space = _space()
    cands = space.candidates()
    keys = [c.key() for c in cands]
    assert len(keys) == len(set(keys))
    llama = [c for c in cands if c.backend == "llamacpp"]
    # int4 stages are dropped on llama.cpp: none/int4 g32/int4 g128 run the same GGUF; lowrank refused
    assert {c.method for c in llama} == {"none"}
    assert len(llama) == 2 * 2 * 2  # qtypes × batch sizes × threads
    torch = [c for c in cands if c.backend == "torch"]
    assert len(torch) == (1 + 2 + 1) * 2 * 2


def test_candidate_mapping_and_labels():
    int4 = Candidate(
        "int4-weight", {"group_size": 32}, ({"method": "int4-weight", "group_size": 32},),
        "llamacpp", "q4_0", 8, 2,
    )  # fmt: skip
    none = Candidate("none", {}, (), "llamacpp", "q4_0", 8, 2)
    assert int4.key() == none.key() and int4.weights_key() == none.weights_key()
    assert int4.label() == "none → llama.cpp q4_0 · batch 8 · 2 threads"
    torch = Candidate(
        "int4-weight", {"group_size": 32}, ({"method": "int4-weight", "group_size": 32},),
        "torch", None, 1, 1,
    )  # fmt: skip
    assert torch.label() == "int4-weight g32 → torch · batch 1 · 1 thread"
    assert torch.weights_key() == Candidate(**{**torch.__dict__, "batch_size": 8}).weights_key()
    low = Candidate("lowrank", {}, ({"method": "lowrank"},), "llamacpp", "q8_0", 1, 1)
    assert "cannot be exported to GGUF" in low.incompatible()
    assert Candidate.from_dict(torch.to_dict()) == torch
    # ONNX Runtime quantizes by its own weight format: torch's int8 stage is replaced
    onnx = Candidate("int8", {}, ({"method": "int8-weight"},), "onnxruntime", "int8-b32-acc4", 1, 1)
    plain = Candidate("none", {}, (), "onnxruntime", "int8-b32-acc4", 1, 1)
    assert onnx.incompatible() is None and onnx.effective_stages() == []
    assert onnx.key() == plain.key() and onnx.weights_key() == plain.weights_key()
    assert onnx.label() == "none → ONNX Runtime int8-b32-acc4 · batch 1 · 1 thread"
    assert onnx.params() == {
        "method": "int8", "backend": "onnxruntime", "weights": "int8-b32-acc4",
        "batch_size": 1, "threads": 1,
    }  # fmt: skip
    fp32 = Candidate("none", {}, (), "onnxruntime", "fp32", 1, 1)
    assert fp32.weights_key() != plain.weights_key() != none.weights_key()
    # the same format name on another runtime is another computation: never reused across
    ov = Candidate("none", {}, (), "openvino", "fp32", 1, 1)
    assert ov.weights_key() != fp32.weights_key()
    assert ov.label() == "none → OpenVINO fp32 · batch 1 · 1 thread"
    assert Candidate.from_dict(onnx.to_dict()) == onnx


def test_suggest_asks_conditional_parameters_only_when_they_apply():
    space = _space()
    trial = optuna.trial.FixedTrial(
        {"method": "int4-weight", "int4-weight.group_size": 128, "backend": "torch",
         "batch_size": 8, "threads": 2}
    )  # fmt: skip
    cand = space.suggest(trial)
    assert cand.stages == ({"method": "int4-weight", "group_size": 128},)
    assert cand.qtype is None and cand.batch_size == 8
    trial = optuna.trial.FixedTrial(
        {"method": "none", "backend": "llamacpp", "llamacpp.qtype": "q8_0", "batch_size": 1,
         "threads": 1}
    )  # fmt: skip
    assert space.suggest(trial).qtype == "q8_0"


def test_start_points_become_optuna_params():
    space = _space(start=[{"method": "int4-weight", "group_size": 32, "backend": "torch"}])
    assert space.start_params() == [
        {"method": "int4-weight", "int4-weight.group_size": 32, "backend": "torch"}
    ]
    assert space.start_candidates() == []  # batch size and threads left to the sampler


def test_without_backend_drops_its_start_points_and_says_why():
    space = _space(start=[{"method": "none", "backend": "llamacpp", "qtype": "q4_0"}])
    narrowed = space.without_backend("llamacpp", "xllamacpp is missing")
    assert [b for b, _ in narrowed.backends] == ["torch"]
    assert narrowed.start == ()
    assert "xllamacpp is missing" in narrowed.notes[0]


def test_auto_threads():
    assert auto_threads(1) == (1,)
    assert auto_threads(8) == (1, 2, 4, 8)


def _onnx_space(**over):
    return _space(
        backends={"torch": {}, "onnxruntime": {"weights": ["fp32", "int4", "int4-b64", "int8"]}},
        **over,
    )


def test_onnx_weights_are_a_dimension_of_the_space():
    space = _onnx_space()
    assert dict(space.backends)["onnxruntime"] == (
        "fp32", "int4-b32-acc4", "int4-b64-acc4", "int8-b32-acc4",
    )  # fmt: skip
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert space.to_dict()["backends"]["onnxruntime"] == {"weights": list(space.backends[1][1])}
    onnx = [c for c in space.candidates() if c.backend == "onnxruntime"]
    # int4-weight stages are replaced (none/int4 g32/int4 g128 run the same export); lowrank
    # is not refused (the builder says if it cannot read the model)
    assert {c.method for c in onnx} == {"none", "lowrank"}
    assert len(onnx) == 2 * 4 * 2 * 2  # methods × weight formats × batch sizes × threads
    defaults = _space(backends={"onnxruntime": {}})
    assert dict(defaults.backends)["onnxruntime"] == ("fp32", "int4-b32-acc4", "int8-b32-acc4")


@pytest.mark.parametrize(
    ("backends", "message"),
    [
        ({"onnxruntime": {"weights": ["int4-g32"]}}, "unknown ONNX weight format 'int4-g32'"),
        ({"onnxruntime": {"weights": ["int4", "int4-b32-acc4"]}}, "weight format twice"),
        ({"onnxruntime": {"weights": []}}, "needs at least one value"),
        ({"onnxruntime": {"qtype": ["q4_0"]}}, "unknown key(s) in backend 'onnxruntime'"),
        ({"torch": {"weights": ["fp32"]}}, "unknown key(s) in backend 'torch'"),
    ],
)
def test_bad_onnx_weights_are_refused_up_front(backends, message):
    with pytest.raises(WattlmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _space(backends=backends)


def test_onnx_weights_are_suggested_and_started_under_the_backends_own_name():
    space = _onnx_space(
        start=[
            {"method": "none", "backend": "onnxruntime", "weights": "int4", "batch_size": 8,
             "threads": 2},
        ]
    )  # fmt: skip
    assert space.start[0]["weights"] == "int4-b32-acc4"  # canonical spelling
    assert space.start_params() == [
        {"method": "none", "backend": "onnxruntime", "onnxruntime.weights": "int4-b32-acc4",
         "batch_size": 8, "threads": 2}
    ]  # fmt: skip
    (cand,) = space.start_candidates()
    assert (cand.backend, cand.qtype) == ("onnxruntime", "int4-b32-acc4")
    trial = optuna.trial.FixedTrial(
        {"method": "int4-weight", "int4-weight.group_size": 32, "backend": "onnxruntime",
         "onnxruntime.weights": "int8-b32-acc4", "batch_size": 1, "threads": 1}
    )  # fmt: skip
    got = space.suggest(trial)
    assert (got.qtype, got.effective_stages()) == ("int8-b32-acc4", [])
    with pytest.raises(WattlmError, match="weights='int4-b128-acc4' is not in the space"):
        _onnx_space(start=[{"method": "none", "backend": "onnxruntime", "weights": "int4-b128"}])
    both = {"llamacpp": {"qtype": ["q4_0"]}, "onnxruntime": {"weights": ["int4"]}}
    with pytest.raises(WattlmError, match="backend 'onnxruntime' takes no 'qtype'"):
        _space(backends=both, start=[{"method": "none", "backend": "onnxruntime", "qtype": "q4_0"}])


def test_full_space_searches_onnx_weight_formats():
    space = load_space("full")
    formats = dict(space.backends)["onnxruntime"]
    assert {"fp32", "int4-b32-acc4", "int8-b32-acc4", "int4-b32-acc4-qhead"} <= set(formats)
    assert any(p.get("weights") == "int4-b32-acc4" for p in space.start)


@pytest.mark.parametrize("name", SHIPPED)
def test_each_point_asks_for_its_own_candidate(name):
    # the parameters Explorer enqueues make suggest() return exactly that candidate
    space = load_space(name)
    points = space.points()
    assert [c.key() for _, c in points] == [c.key() for c in space.candidates()]
    for params, cand in points:
        assert space.suggest(optuna.trial.FixedTrial(params)).key() == cand.key()
