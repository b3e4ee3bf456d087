"""wattlm: make language models cheaper in energy without losing quality, and prove it.

The package import is cheap: heavy modules (torch, transformers, llama.cpp) load only when
a public function that needs them is first used.

Example:
    >>> import wattlm
    >>> wattlm.__version__  # doctest: +ELLIPSIS
    '...'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wattlm._version import __version__
from wattlm.errors import WattlmError
from wattlm.models.marked import COMPRESSION_FILE, register_provider

# The composition root: compressed model folders are read and written by wattlm.compress, a
# layer above wattlm.models. Naming it here (imported only when such a folder is first
# loaded or saved) gives every entry point the reader without importing torch now.
register_provider(COMPRESSION_FILE, "wattlm.compress")

if TYPE_CHECKING:  # pragma: no cover
    from wattlm.bench.config import BenchConfig
    from wattlm.bench.runner import bench
    from wattlm.compress.base import compress_
    from wattlm.models.load import LoadedModel, load_model, save_model
    from wattlm.search import OptimizeConfig, optimize

__all__ = [
    "BenchConfig",
    "LoadedModel",
    "OptimizeConfig",
    "WattlmError",
    "__version__",
    "bench",
    "compress_",
    "load_model",
    "optimize",
    "save_model",
]

_LAZY = {
    "BenchConfig": "wattlm.bench.config",
    "bench": "wattlm.bench.runner",
    "LoadedModel": "wattlm.models.load",
    "load_model": "wattlm.models.load",
    "save_model": "wattlm.models.load",
    "compress_": "wattlm.compress.base",
    "optimize": "wattlm.search",
    "OptimizeConfig": "wattlm.search",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wattlm' has no attribute {name!r}")
