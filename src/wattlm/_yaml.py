"""YAML reading for recipes and search spaces, with YAML 1.2 numbers.

PyYAML follows YAML 1.1, where ``5e-5`` (no dot) is a *string*; every config file a person
writes means a number there. This loader adds the YAML 1.2 float pattern to ``SafeLoader``
(the fix PyYAML's own issue tracker recommends); nothing else changes, and it stays safe
(no Python objects are ever constructed).

Example:
    >>> load_yaml("lr: 5e-5\\nsteps: 10\\nname: 1e3x")
    {'lr': 5e-05, 'steps': 10, 'name': '1e3x'}
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse ``text`` safely, reading ``1e-4``-style numbers as floats."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: constructs no objects
