"""Students built from their teacher: the right layers, copied exactly; bad pairs refused."""

import json

import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm, tiny_classifier
from wattlm.train.student import (
    build_student,
    check_pair,
    even_layer_map,
    layer_path,
    parse_student_spec,
    select_layers,
)


@pytest.mark.parametrize(
    ("spec", "n", "want"),
    [
        ("layers:3", 6, [0, 2, 5]),
        ("layers:1", 6, [0]),
        ("layers:2", 30, [0, 29]),
        ("layers:0,2,4", 6, [0, 2, 4]),
        ("layers:4,1", 6, [1, 4]),
        ("layers:2,", 6, [2]),
        ("every:2", 6, [0, 2, 4]),
        ("every:3", 7, [0, 3, 6]),
    ],
)
def test_layer_selection(spec, n, want):
    assert select_layers(n, parse_student_spec(spec)) == want


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("layers:0", "at least 1 layer"),
        ("every:1", "every:K needs an integer K >= 2"),
        ("drop-layers:1.5", "ratio must be in"),
        ("layers:a,b", "want integers"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(WattlmError, match=match):
        parse_student_spec(spec)


def test_student_must_be_smaller_and_in_range():
    with pytest.raises(WattlmError, match="not smaller"):
        select_layers(6, parse_student_spec("layers:6"))
    with pytest.raises(WattlmError, match="out of range"):
        select_layers(6, parse_student_spec("layers:0,6"))


def _layer_tensors(model, index):
    path = layer_path(model)
    return dict(model.get_submodule(path)[index].state_dict())


@pytest.mark.parametrize("make", [lambda: tiny_causal_lm(layers=4), lambda: _bert(4)])
def test_student_copies_the_kept_layers_exactly(make):
    teacher = make()
    student = build_student(teacher, "layers:1,3")
    assert student.layer_map == [1, 3]
    model = student.loaded.model
    assert model.config.num_hidden_layers == 2
    assert len(model.get_submodule(layer_path(model))) == 2
    for j, i in enumerate([1, 3]):
        mine, theirs = _layer_tensors(model, j), _layer_tensors(teacher.model, i)
        assert mine.keys() == theirs.keys()
        for name in mine:
            assert torch.equal(mine[name], theirs[name]), name
    t_sd, s_sd = teacher.model.state_dict(), model.state_dict()
    for name in s_sd:  # embeddings, final norm, head: copied too
        if not name.startswith(layer_path(model) + "."):
            assert torch.equal(s_sd[name], t_sd[name]), name
    # an independent copy: training the student cannot change the teacher
    first = next(model.parameters())
    with torch.no_grad():
        first.add_(1.0)
    assert not torch.equal(first, next(teacher.model.parameters()))


def test_llama_student_runs_and_keeps_layer_indices_consistent():
    teacher = tiny_causal_lm(layers=4)
    student = build_student(teacher, "every:2").loaded.model
    ids = torch.tensor([[1, 5, 9, 13]])
    out = student.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 7)
    idx = [layer.self_attn.layer_idx for layer in student.model.layers]
    assert idx == [0, 1]


def _bert(layers):
    from transformers import BertConfig, BertForSequenceClassification

    from wattlm.models.load import LoadedModel
    from wattlm.testing.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=64,
        num_labels=2,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    return LoadedModel(
        BertForSequenceClassification(config).eval(), tok, "bert", task="sequence-classification"
    )


def test_drop_layers_spec_reuses_compress(text_file):
    teacher = tiny_causal_lm(layers=3)
    student = build_student(teacher, "drop-layers:0.33", calibration_data=str(text_file))
    assert student.loaded.model.config.num_hidden_layers == 2
    assert len(student.layer_map) == 2
    assert student.report["drop_layers"]["method"] == "drop-layers"
    dropped = set(range(3)) - set(student.layer_map)
    assert dropped == set(student.report["drop_layers"]["removed_layers"])
    kept_first = student.layer_map[0]
    assert torch.equal(
        student.loaded.model.model.layers[0].mlp.up_proj.weight,
        teacher.model.model.layers[kept_first].mlp.up_proj.weight,
    )


def test_config_student_is_narrower_and_maps_layers_evenly(tmp_path):
    teacher = tiny_causal_lm(layers=4)
    file = tmp_path / "student.json"
    file.write_text(
        json.dumps({"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2})
    )
    student = build_student(teacher, f"config:{file}")
    assert student.loaded.model.config.hidden_size == 32
    assert student.layer_map == even_layer_map(2, 4) == [1, 3]


def test_vocabulary_mismatch_is_refused(tmp_path):
    teacher = tiny_causal_lm()
    file = tmp_path / "student.json"
    file.write_text(json.dumps({"vocab_size": 100}))
    with pytest.raises(WattlmError, match="vocabulary mismatch"):
        build_student(teacher, f"config:{file}")


def test_other_tokenizer_is_refused():
    teacher = tiny_causal_lm()
    other = tiny_causal_lm()
    vocab = other.tokenizer.get_vocab()
    other.tokenizer.add_tokens(["<brand-new-token>"])
    assert other.tokenizer.get_vocab() != vocab
    with pytest.raises(WattlmError, match="tokenizers differ"):
        check_pair(teacher, other)


def test_label_count_and_task_mismatch_are_refused():
    with pytest.raises(WattlmError, match="label count mismatch"):
        check_pair(tiny_classifier(num_labels=2), tiny_classifier(num_labels=3))
    with pytest.raises(WattlmError, match="causal-lm"):
        check_pair(tiny_classifier(), tiny_causal_lm())
