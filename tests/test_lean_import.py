"""Importing wattlm (and asking for --help) must not load torch, transformers or a GPU."""

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print(' '.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def test_import_is_lean():
    mods = _modules_after("import wattlm")
    assert not {"torch", "transformers", "xllamacpp", "pynvml"} & mods


def test_cli_help_is_lean():
    mods = _modules_after("import wattlm.cli.main")
    assert not {"torch", "transformers", "xllamacpp"} & mods
