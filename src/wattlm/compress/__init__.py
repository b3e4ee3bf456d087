"""Compression: one verb, ``compress_(model, config)``, one config class per method.

Methods register their handler with :func:`register`; recipes chain configs by name.
"""

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
