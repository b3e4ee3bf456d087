"""Compression: one verb, ``compress_(model, config)``, one config class per method.

Methods register their handler with :func:`register`; recipes chain configs by name.
Importing this package also registers the reader and writer of compressed model folders
(:mod:`wattlm.compress.saved`) with :mod:`wattlm.models.marked`.
"""

from wattlm.compress import saved as _saved  # noqa: F401  (registers the folder format)
from wattlm.compress.base import (
    CompressConfig,
    CompressContext,
    compress_,
    config_class,
    method_names,
    register,
    restore_,
)

__all__ = [
    "CompressConfig",
    "CompressContext",
    "compress_",
    "config_class",
    "method_names",
    "register",
    "restore_",
]
