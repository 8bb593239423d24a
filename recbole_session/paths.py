"""Where the package's data files are. Imports nothing heavy (no torch, no RecBole), so that the
converter can use it without paying for them."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def properties_dir() -> Path:
    """The yaml property files: inside the installed package (``pip install .`` ships
    ``properties/`` as ``recbole_session/properties``) or at the top of a source checkout
    (editable install, or running from the repository)."""
    packaged = PACKAGE_DIR / "properties"
    if packaged.is_dir():
        return packaged
    return PACKAGE_DIR.parent / "properties"
