"""The prompts of the answer path, as data files (`answer.yaml`, `condense.yaml`, `verify.yaml`)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def load_prompt(name: str) -> dict[str, str]:
    """The prompt data file `name`.yaml of this folder, parsed."""
    import yaml

    return yaml.safe_load(resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
