"""The folder-format registry: wattlm.models dispatches marked folders to the package that
registered them (wattlm.compress), never importing it itself."""

import json
import subprocess
import sys

import pytest

from wattlm.compress.recipe import Recipe, apply_recipe
from wattlm.errors import WattlmError
from wattlm.models import marked
from wattlm.models.load import load_model, save_model
from wattlm.testing.tiny import tiny_causal_lm


@pytest.fixture
def int8_folder(tmp_path):
    lm = tiny_causal_lm(seed=3)
    recipe = Recipe.from_dict({"stages": [{"method": "int8-weight"}]})
    lm.compression = apply_recipe(lm.model, recipe, tokenizer=lm.tokenizer)
    return save_model(lm, tmp_path / "int8")


def test_compress_registers_its_format():
    from wattlm.compress.saved import load_compressed, save_compressed

    fmt = marked.format_for(marked.COMPRESSION_FILE)
    assert (fmt.read, fmt.write) == (load_compressed, save_compressed)


def test_marked_folder_without_a_reader_fails_clearly(int8_folder, monkeypatch):
    monkeypatch.setattr(marked, "_FORMATS", {})
    monkeypatch.setattr(marked, "_PROVIDERS", {})
    with pytest.raises(WattlmError, match="no reader is registered") as err:
        load_model(str(int8_folder))
    assert "wattlm.compress" in err.value.hint


def test_a_bare_models_import_reads_a_compressed_folder(int8_folder):
    """Only wattlm.models.load imported: the root's provider brings the reader in."""
    code = (
        "import sys; from wattlm.models.load import load_model; "
        "before = 'wattlm.compress' in sys.modules; "
        f"lm = load_model({str(int8_folder)!r}); "
        "print(before, lm.compression[0]['method'], lm.model.model.layers[0].mlp.up_proj.qweight.dtype)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "int8-weight", "torch.int8"]


def test_plain_folder_has_no_marker(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({}))
    assert marked.marker_of(tmp_path) is None
