import json

import torch

from wattlm.compress.recipe import Recipe, apply_recipe
from wattlm.models.load import load_model, save_model
from wattlm.testing.tiny import tiny_causal_lm


def test_compressed_model_saves_and_reloads_with_stages(tmp_path):
    lm = tiny_causal_lm(seed=2)
    recipe = Recipe.from_dict(
        {"stages": [{"method": "cast", "dtype": "bfloat16", "keep": ["lm_head"]}]}
    )
    lm.compression = apply_recipe(lm.model, recipe, tokenizer=lm.tokenizer)
    out = save_model(lm, tmp_path / "m")
    record = json.loads((out / "wattlm_compression.json").read_text())
    assert [s["method"] for s in record["stages"]] == ["cast"]
    back = load_model(str(out))
    assert back.compression == lm.compression
    assert back.model.model.layers[0].self_attn.o_proj.weight.dtype == torch.bfloat16
    assert back.model.lm_head.weight.dtype == torch.float32
    assert back.model.lm_head.weight is back.model.model.embed_tokens.weight
    ids = torch.tensor([[3, 14, 15, 92, 65]])
    with torch.no_grad():
        assert torch.equal(back.model(ids).logits, lm.model(ids).logits)
    assert any("compressed by wattlm: cast" in n for n in back.notes)


def test_int8_classifier_reloads_with_aligned_weights(tmp_path):
    from wattlm.testing.tiny import tiny_classifier

    clf = tiny_classifier()
    assert clf.model.config.tie_word_embeddings  # BERT says tied but has no output embedding
    recipe = Recipe.from_dict({"stages": [{"method": "int8-weight"}]})
    clf.compression = apply_recipe(clf.model, recipe, tokenizer=clf.tokenizer)
    out = save_model(clf, tmp_path / "clf")
    back = load_model(str(out), task="sequence-classification")
    qweights = [b for n, b in back.model.named_buffers() if n.endswith("qweight")]
    assert qweights and all(q.data_ptr() % 64 == 0 for q in qweights)
    enc = clf.tokenizer(["a fine film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(back.model(**enc).logits, clf.model.eval()(**enc).logits)


def test_compressed_gguf_loaded_model_saves_and_reloads(tmp_path):
    """A GGUF-loaded model carries transformers' GGUF quantization marker; its compressed
    form must still save (the headline `wattlm compress --model smollm2-135m` path)."""
    from wattlm.export.gguf_writer import export_gguf

    lm = tiny_causal_lm(seed=4)
    gguf = export_gguf(lm.model, lm.tokenizer, tmp_path / "tiny.gguf", qtype="q8_0")
    base = load_model(str(gguf))
    assert getattr(base.model.config, "quantization_config", None) is not None
    recipe = Recipe.from_dict({"stages": [{"method": "int8-weight"}]})
    base.compression = apply_recipe(base.model, recipe, tokenizer=base.tokenizer)
    out = save_model(base, tmp_path / "int8")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    back = load_model(str(out))
    assert back.compression == base.compression
    ids = torch.tensor([[3, 14, 15, 92, 65]])
    with torch.no_grad():
        assert torch.equal(back.model(ids).logits, base.model(ids).logits)


def test_in_memory_copy_of_a_gguf_model_saves(tmp_path):
    """A deep copy wrapped as an in-memory model keeps transformers' GGUF marker."""
    import copy

    from wattlm.export.gguf_writer import export_gguf
    from wattlm.models.load import LoadedModel

    lm = tiny_causal_lm(seed=5)
    base = load_model(str(export_gguf(lm.model, lm.tokenizer, tmp_path / "t.gguf", qtype="f32")))
    copy_ = LoadedModel(copy.deepcopy(base.model), base.tokenizer, "copy", None, "memory")
    back = load_model(str(save_model(copy_, tmp_path / "copy")))
    assert getattr(back.model.config, "quantization_config", None) is None
