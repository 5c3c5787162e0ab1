"""Where kops finds its shipped data (templates, inventories) and keeps its cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from kops.core.errors import InputError
from kops.core.errors import KopsError

_PKG = Path(__file__).resolve().parent.parent   # the kops package (this file is kops/core/paths.py)


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


def read_input(path, what: str, max_bytes: int, *, hint: str | None = None) -> bytes:
    """A file named on the command line or in an inventory, read safely: a regular file
    only (a FIFO, a device or a folder is refused, never waited on), at most ``max_bytes``
    (read in bounded chunks), its content never echoed. InputError (exit 2) names ``what``."""
    import stat


    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        raise InputError(f"{what} {path}: cannot read it: {getattr(exc, 'strerror', None) or exc}",
                         hint=hint) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, a device, a socket)"
            raise InputError(f"{what} {path}: it is {kind}; a regular file is needed", hint=hint)
        if st.st_size > max_bytes:
            raise InputError(f"{what} {path} is {st.st_size} bytes; at most {max_bytes} are read",
                             hint=hint or "is this the right file?")
        chunks, got = [], 0
        while got <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > max_bytes:   # it grew while kops read it
            raise InputError(f"{what} {path} is more than {max_bytes} bytes", hint=hint or "is this the right file?")
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read it: {exc.strerror or exc}", hint=hint) from None
    finally:
        os.close(fd)


def load_json(data: bytes, what: str, *, max_depth: int = 64):
    """JSON from a file kops was given: not JSON, or nested deeper than ``max_depth``, is bad
    input (exit 2), not a crash."""
    import json


    depth = deepest = 0
    in_string = escaped = False
    for ch in data.decode("utf-8", errors="replace"):   # nesting counted before parsing (no recursion)
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > max_depth:
                raise InputError(f"{what}: JSON nested more than {max_depth} levels deep")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{what}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise InputError(f"{what}: not JSON ({exc})") from None


def write_output(path, data: str | bytes, what: str, *, mode: int = 0o644) -> Path:
    """A file kops writes where it was told to: never through a symbolic link or into a
    FIFO or a device (refused, exit 2), written whole to a new file beside it and renamed
    over the old one (a reader never sees half of it), ``mode`` from the start."""
    import stat
    import tempfile


    target = Path(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror or exc}") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise InputError(f"{what} {path} is a symbolic link (to {os.readlink(target)}): kops does not write "
                         "through links it did not make", hint="remove the link, or name another file")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {path}: it is not a regular file (a folder, FIFO or device)",
                         hint="name a file")
    raw = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=".kops-", dir=target.parent if str(target.parent) else ".")
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot write there: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise InputError(f"{what} {path}: cannot write it: {exc.strerror or exc}") from None
    return target


def inside(parent: Path, child: Path) -> Path:
    """``child`` resolved, refused (ValueError) unless it stays inside ``parent`` resolved:
    a path kops derives from an input never names a folder above its own (``..``, an
    absolute part, a symlink out)."""
    base = parent.resolve()
    target = child.resolve()
    if target == base or base not in target.parents:
        raise ValueError(f"{child} is not inside {parent}")
    return target


def read_json(path: Path, what: str, default, *, hint: str | None = None):
    """One of kops's own state files (JSON): ``default`` when it is absent; a file that is
    not JSON, or not of the default's type, is an error naming it (never read as empty)."""
    import json


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
