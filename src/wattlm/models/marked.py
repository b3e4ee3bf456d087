"""Model folders in a format a higher layer owns, recognised by a marker file.

:mod:`wattlm.models` reads and writes plain Hugging Face folders and GGUF files itself. A
folder holding a marker file, such as :data:`COMPRESSION_FILE` (a model changed by
``wattlm.compress``), needs the code of the package that wrote it, and that package sits
*above* ``wattlm.models``: importing it from here would point the layers the wrong way.

So the dependency is inverted, the way transformers dispatches a ``quantization_config`` to
the quantizer registered for it: the owning package registers a :class:`FolderFormat` under
its marker when it is imported (``wattlm.compress`` does, in ``wattlm.compress.saved``), and
:func:`~wattlm.models.load.load_model` / :func:`~wattlm.models.load.save_model` dispatch to
whatever is registered.

Which entry points have it registered? All of them, by one declaration at the composition
root: ``wattlm/__init__.py`` (which Python runs before any ``wattlm.*`` module, so before
the CLI, ``wattlm.load_model``, ``wattlm.bench`` or a direct ``wattlm.models.load`` import)
names the *provider* of each marker with :func:`register_provider`: a package imported on
first need, which then registers the real format. ``import wattlm`` stays free of torch,
and ``wattlm.models`` never names the package above it. A marked folder whose format has
neither a registration nor a provider fails with a clear :class:`~wattlm.errors.WattlmError`.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> marker_of(folder) is None
    True
    >>> _ = (folder / COMPRESSION_FILE).write_text("{}")
    >>> marker_of(folder)
    'wattlm_compression.json'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattlm.errors import WattlmError

#: the marker of a folder saved with compression stages (written by ``wattlm.compress``)
COMPRESSION_FILE = "wattlm_compression.json"
#: markers this layer recognises even with nothing registered (to fail clearly)
KNOWN_MARKERS = (COMPRESSION_FILE,)


@dataclass(frozen=True)
class FolderFormat:
    """How to read and write a folder marked by ``marker``.

    Attributes:
        marker: the file that marks a folder in this format.
        read: ``read(folder, *, spec, auto, task) -> LoadedModel``; ``auto`` is the
            transformers auto class of the task.
        write: ``write(model, stages, folder, *, config)``: the model, its recorded stages
            and the Hugging Face config to save.
    """

    marker: str
    read: Callable[..., Any]
    write: Callable[..., None]


_FORMATS: dict[str, FolderFormat] = {}
_PROVIDERS: dict[str, str] = {}


def register_format(fmt: FolderFormat) -> None:
    """Register (or replace) the format of folders marked by ``fmt.marker``."""
    _FORMATS[fmt.marker] = fmt


def register_provider(marker: str, module: str) -> None:
    """Name the module that registers the format of ``marker`` when imported (imported on
    first need, so registering a provider costs nothing)."""
    _PROVIDERS[marker] = module


def marker_of(folder: Path) -> str | None:
    """The marker file ``folder`` holds, if any (``None``: a plain folder)."""
    for marker in dict.fromkeys((*KNOWN_MARKERS, *_FORMATS, *_PROVIDERS)):
        if (folder / marker).is_file():
            return marker
    return None


def format_for(marker: str) -> FolderFormat:
    """The registered format of ``marker``, importing its provider first if needed."""
    if marker not in _FORMATS and marker in _PROVIDERS:
        importlib.import_module(_PROVIDERS[marker])
    if marker not in _FORMATS:
        raise WattlmError(
            f"no reader is registered for model folders marked by {marker}",
            hint=f"import the package that saved it first (wattlm.compress for {COMPRESSION_FILE})",
        )
    return _FORMATS[marker]
