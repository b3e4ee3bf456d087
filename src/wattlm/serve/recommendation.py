"""What an optimize run recommends serving: read from its ``optimize.json`` file.

The file's ``recommended_model`` entry (format: ``report/schema.json``) names the saved
model (``path``, relative to the run folder), its ``backend``, ``batch_size`` and
``threads``; ``wattlm serve RUN_DIR`` serves that model with that many slots and threads.

Example:
    >>> import json, pathlib, tempfile
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "recommended").mkdir()
    >>> _ = (run / "recommended" / "model.gguf").write_bytes(b"GGUF")
    >>> rec = {"path": "recommended/model.gguf", "backend": "llamacpp",
    ...        "batch_size": 8, "threads": 2}
    >>> _ = (run / "optimize.json").write_text(json.dumps({"recommended_model": rec}))
    >>> r = read_recommendation(run)
    >>> (r["model"].endswith("model.gguf"), r["backend"], r["slots"], r["threads"])
    (True, 'llamacpp', 8, 2)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wattlm.errors import WattlmError

OPTIMIZE_FILE = "optimize.json"


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder holding ``optimize.json``."""
    return (Path(path) / OPTIMIZE_FILE).is_file()


def read_recommendation(run_dir: str | Path) -> dict[str, Any]:
    """ServeConfig fields (model, backend, slots, threads) for a run's recommended model."""
    file = Path(run_dir) / OPTIMIZE_FILE
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise WattlmError(f"cannot read {file}: {err}") from None
    rec = record.get("recommended_model") if isinstance(record, dict) else None
    if not rec:
        raise WattlmError(
            f"{file} recommends no saved model",
            hint="the search found no configuration to save (see its report), or it ran on "
            "a synthetic evaluator; serve a model file instead",
        )
    model = Path(run_dir) / rec["path"]
    if not model.exists():
        raise WattlmError(f"the recommended model {model} is missing")
    return {
        "model": str(model),
        "backend": rec["backend"],
        "slots": int(rec["batch_size"]),
        "threads": int(rec["threads"]),
    }
