"""A recipe's parameters: the defaults of ``properties/dataset/<recipe>.yaml`` (``session_gap``
and the ``convert:`` block), a preset of ``presets.yaml`` on top, the caller's overrides last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from recbole_session.convert.errors import ConvertError
from recbole_session.paths import properties_dir

PRESETS_FILE = Path(__file__).resolve().parent / "presets.yaml"


def preset_names() -> list[str]:
    return sorted(yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8")) or {})


def dataset_params(name: str) -> dict[str, Any]:
    """The conversion parameters of ``properties/dataset/<name>.yaml`` (``session_gap`` and the
    ``convert:`` block), as defaults for the recipe."""
    file = properties_dir() / "dataset" / f"{name}.yaml"
    if not file.is_file():
        return {}
    loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    params = dict(loaded.get("convert") or {})
    if "session_gap" in loaded:
        params.setdefault("session_gap", loaded["session_gap"])
    return params


def preset(name: str | None) -> dict[str, Any]:
    if not name:
        return {}
    presets = yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8")) or {}
    if name not in presets:
        raise ConvertError(f"--preset: unknown preset '{name}' (known: {', '.join(sorted(presets))})")
    return dict(presets[name])


def merged_params(recipe: str, preset_name: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then the preset, then ``overrides`` (``None`` values left out)."""
    params = {**dataset_params(recipe), **preset(preset_name),
              **{k: v for k, v in overrides.items() if v is not None}}
    # 3600.0 from the command line and 3600 from a yaml file are the same setting
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in params.items()}
