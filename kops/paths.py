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


def read_json(path: Path, what: str, default, *, hint: str | None = None):
    """One of kops's own state files (JSON): ``default`` when it is absent; a file that is
    not JSON, or not of the default's type, is an error naming it (never read as empty)."""
    import json

    from .errors import KopsError

    if not path.is_file():
        return default
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise KopsError(f"{path}: kops's {what} cannot be read ({exc})",
                        hint=hint or "restore the file, or remove it if you know the cluster's state") from exc
    if not isinstance(data, type(default)):
        raise KopsError(f"{path}: kops's {what} is a JSON {type(data).__name__}, not a {type(default).__name__}",
                        hint=hint or "restore the file, or remove it if you know the cluster's state")
    return data
