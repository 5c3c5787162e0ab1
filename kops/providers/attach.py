"""A command on a node, attached to this process's terminal: `kops exec` and `kops shell`.

Docker: the engine's exec API (``exec_create`` / ``exec_start`` on a hijacked socket),
stdin copied in (its end passed on as a half-close, so a piped producer sees EOF),
stdout and stderr copied out as they come, the exit code from ``exec_inspect``; with a
TTY, the local terminal is put in raw mode and its size follows the window. SSH: the
system's ``ssh`` with the host keys kops verified (strict checking), stdio inherited.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
import threading
import time

from kops.core.errors import EngineError
from kops.bundle.launch import shell_line


def _pump_stdin(raw, stop: threading.Event) -> None:
    """stdin -> the exec's socket, then a half-close (EOF for the command)."""
    fd = sys.stdin.fileno() if sys.stdin is not None else None
    try:
        while fd is not None and not stop.is_set():
            data = os.read(fd, 65536)
            if not data:
                break
            raw.sendall(data)
    except OSError:
        pass   # the command ended (socket closed) or there is no stdin
    finally:
        try:
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def docker_exec(api, container_id: str, argv: list[str], *, tty: bool, env: dict[str, str] | None = None) -> int:
    """Run ``argv`` in the container as its default user, attached; its exit code."""
    from docker.utils.socket import STDERR, frames_iter

    ex = api.exec_create(container_id, argv, stdin=True, tty=tty, environment=env or None)
    sock = api.exec_start(ex["Id"], socket=True, tty=tty)
    raw = getattr(sock, "_sock", sock)
    stop = threading.Event()
    restore = _raw_terminal() if tty else None
    if tty:
        _follow_window(api, ex["Id"])
    try:
        threading.Thread(target=_pump_stdin, args=(raw, stop), daemon=True).start()
        out, err = sys.stdout.buffer, sys.stderr.buffer
        for stream, data in frames_iter(raw, tty):
            target = err if stream == STDERR else out
            target.write(data)
            target.flush()
    except (ConnectionError, OSError):
        pass   # the engine closed the stream: the command's end (its code says how)
    finally:
        stop.set()
        if restore:
            restore()
        try:
            sock.close()
        except OSError:
            pass
    deadline = time.monotonic() + 15
    while True:
        info = api.exec_inspect(ex["Id"])
        if not info.get("Running") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    code = info.get("ExitCode")
    if code is None:
        raise EngineError(f"the Docker engine gave no exit code for `{argv[0]}`")
    return int(code)


def _raw_terminal():
    """Put the local terminal in raw mode (keys go to the node as typed); a restore function."""
    import termios
    import tty as ttymod

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    ttymod.setraw(fd)
    return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _follow_window(api, exec_id: str) -> None:
    def resize(*_):
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
            api.exec_resize(exec_id, height=size.lines, width=size.columns)
        except Exception:  # noqa: BLE001 - a resize that fails is cosmetic
            pass

    resize()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGWINCH, resize)


def ssh_remote(env: dict[str, str], bin_dir: str, argv: list[str], *, sudo: bool = False) -> str:
    """The command line the host's login shell runs: ``argv`` under ``env`` with ``bin_dir``
    first on PATH. Every word is quoted; only the host's own ``$PATH`` is expanded there."""

    words = shell_line([f"{k}={v}" for k, v in env.items()])
    return (f"exec {'sudo -n -- ' if sudo else ''}env {words} PATH={shlex.quote(bin_dir)}:\"$PATH\" "
            f"{shell_line(argv)}")


def ssh_argv(*, address: str, port: int, user: str, key: str | None, known_hosts: str, tty: bool,
             remote: str) -> list[str]:
    """The ``ssh`` command line for one remote command, host keys checked strictly against
    exactly the keys kops verified (kops.hostkeys), no password prompts."""
    import shutil

    ssh = shutil.which("ssh")
    if not ssh:
        raise EngineError("`ssh` (the OpenSSH client) is needed for kops exec/shell over SSH and is not on PATH",
                          hint="install it (apt-get install openssh-client)")
    argv = [ssh, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", str(port), "-l", user]
    if key:
        argv += ["-i", key, "-o", "IdentitiesOnly=yes"]
    return [*argv, "-t" if tty else "-T", "--", address, remote]
