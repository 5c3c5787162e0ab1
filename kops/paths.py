"""Where kops finds its shipped data (templates, inventories) and keeps its cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``templates`` or ``inventories``: inside the wheel, or at the source tree's top."""
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"kops data folder {name!r} not found next to {_PKG}")


def templates_dir() -> Path:
    return data_dir("templates")


def inventories_dir() -> Path:
    return data_dir("inventories")


def cache_dir() -> Path:
    """``$KOPS_CACHE_DIR`` or the user's cache directory (``~/.cache/kops``)."""
    root = os.environ.get("KOPS_CACHE_DIR") or platformdirs.user_cache_dir("kops")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """Per-cluster state kept on the control machine (e.g. the KRaft cluster id)."""
    root = os.environ.get("KOPS_STATE_DIR") or platformdirs.user_state_dir("kops")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
