"""Recipes: ordered compression stages in a YAML file, validated before any work starts.

```yaml
name: prune-then-int8
description: remove a quarter of FFN channels, then int8 weights
calibration_data: wiki-sample      # optional; train split only
stages:
  - method: prune-ffn
    ratio: 0.25
  - method: int8-weight
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattlm._config import Config, check_keys
from wattlm._yaml import load_yaml
from wattlm.compress.base import CompressConfig, CompressContext, compress_
from wattlm.errors import WattlmError

_RECIPE_KEYS = ("name", "description", "calibration_data", "stages")


@dataclass(frozen=True)
class Recipe(Config):
    """An ordered list of compression configs.

    Example:
        >>> r = Recipe.from_dict({"stages": [{"method": "cast", "dtype": "bfloat16"}]})
        >>> [s.method for s in r.stages]
        ['cast']
        >>> Recipe.from_dict(r.to_dict()) == r
        True
    """

    stages: tuple[CompressConfig, ...]
    name: str = "recipe"
    description: str = ""
    calibration_data: str = "wiki-sample"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    config_name = "recipe"

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "recipe", what: str | None = None) -> Recipe:
        """Read a recipe mapping; ``source`` (the file) names it in errors."""
        source = what or source
        if not isinstance(data, dict):
            raise WattlmError(f"{source} must be a mapping with a 'stages' list")
        check_keys(data, _RECIPE_KEYS, source)
        stages = data.get("stages")
        if not isinstance(stages, list) or not stages:
            raise WattlmError(f"{source} needs a non-empty 'stages' list")
        configs = []
        for i, stage in enumerate(stages):
            if not isinstance(stage, dict) or "method" not in stage:
                raise WattlmError(f"stage {i + 1} of {source} needs a 'method' key")
            try:
                configs.append(CompressConfig.from_dict(stage))
            except WattlmError as err:
                raise WattlmError(
                    f"stage {i + 1} ({stage['method']}): {err.message}", hint=err.hint
                ) from None
            except TypeError as err:
                raise WattlmError(f"stage {i + 1} ({stage['method']}): {err}") from None
        return cls(
            stages=tuple(configs),
            name=str(data.get("name", "recipe")),
            description=str(data.get("description", "")),
            calibration_data=str(data.get("calibration_data", "wiki-sample")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The recipe as written in YAML (``extra`` is not part of it)."""
        return {
            "name": self.name,
            "description": self.description,
            "calibration_data": self.calibration_data,
            "stages": [s.to_dict() for s in self.stages],
        }


def load_recipe(path: str | Path) -> Recipe:
    """Read and fully validate a recipe YAML (or JSON) file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise WattlmError(f"recipe not found: {path}", hint="see recipes/ for examples")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise WattlmError(f"{path} is not valid YAML: {err}".splitlines()[0]) from None
    return Recipe.from_dict(data, source=str(path))


def apply_recipe(
    model,
    recipe: Recipe,
    *,
    tokenizer=None,
    on_stage: Callable[[int, CompressConfig], None] | None = None,
) -> list[dict[str, Any]]:
    """Apply every stage in order to ``model`` (in place); return each stage's report."""
    ctx = CompressContext(tokenizer=tokenizer, calibration_data=recipe.calibration_data)
    for i, stage in enumerate(recipe.stages):
        if on_stage:
            on_stage(i, stage)
        compress_(model, stage, ctx)
    return ctx.log
