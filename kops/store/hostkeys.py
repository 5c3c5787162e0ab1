"""SSH host keys, verified before kops logs in anywhere.

Each host's key is read with a bare SSH handshake (no login) and looked up in the known
hosts: the inventory's own file (``ssh.known_hosts``) when it names one, else the user's
``~/.ssh/known_hosts`` and the one kops keeps in its state folder. A known and matching
key passes; a changed key is refused naming the host and both fingerprints; an unknown
key is refused unless the user accepts new keys (trust on first use), which records it in
kops's own file. pyinfra then logs in with strict checking against exactly the keys that
were verified.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kops.core import paths
from kops.core.errors import EngineError, InputError


@dataclass(frozen=True)
class Verified:
    host: str          # inventory host name
    entry: str         # known_hosts host field: addr or [addr]:port
    key: object        # paramiko PKey


def fingerprint(key) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def entry_for(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def kops_file() -> Path:
    return paths.state_dir() / "known_hosts"


def _load(files: list[Path]):
    import paramiko

    keys = paramiko.HostKeys()
    for f in files:
        if f.is_file():
            try:
                keys.load(str(f))
            except (OSError, paramiko.SSHException, ValueError) as exc:
                raise InputError(f"cannot read known hosts file {f}: {exc}") from exc
    return keys


def _offered(address: str, port: int, types: list[str] | None, timeout: float = 10):
    """The host key the server presents (of one of ``types`` when given)."""
    import socket

    import paramiko

    sock = socket.create_connection((address, port), timeout=timeout)
    t = paramiko.Transport(sock)
    try:
        if types:
            opts = t.get_security_options()
            wanted = [k for k in opts.key_types if k in types]
            if wanted:
                opts.key_types = wanted
        t.start_client(timeout=timeout)
        return t.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise EngineError(f"{address}:{port}: the SSH handshake failed: {exc}") from exc
    finally:
        t.close()


def verify(hosts: dict, known_hosts: str | None, accept_new: bool, log) -> Path:
    """Check every host's key; returns a known_hosts file holding exactly the verified keys
    (for pyinfra's strict checking). ``hosts``: name -> HostSpec."""
    own = Path(known_hosts).expanduser() if known_hosts else None
    files = [own] if own else [Path.home() / ".ssh" / "known_hosts", kops_file()]
    if own and not own.is_file():
        raise InputError(f"ssh.known_hosts: {own}: no such file")
    known = _load(files)
    verified, unknown, changed = [], [], []
    for name, h in hosts.items():
        entry = entry_for(h.address, h.port)
        have = known.lookup(entry) or {}
        key = _offered(h.address, h.port, list(have) or None)
        want = have.get(key.get_name())
        if want is None:
            unknown.append((name, h, entry, key))
        elif want.asbytes() != key.asbytes():
            changed.append(f"{name} ({entry}): it presents {fingerprint(key)}, the known hosts say "
                           f"{fingerprint(want)}")
        else:
            verified.append(Verified(name, entry, key))
    if changed:
        raise InputError("SSH host key changed; nothing was changed on any host:\n  - " + "\n  - ".join(changed),
                         hint="if the host was reinstalled, remove its old line from "
                              + ", ".join(str(f) for f in files if f.is_file()) + " and verify the new key; "
                              "otherwise someone may be in the middle")
    if unknown and not accept_new:
        lines = [f"{n} ({e}): {fingerprint(k)}" for n, _h, e, k in unknown]
        raise InputError("SSH host key not known; nothing was changed on any host:\n  - " + "\n  - ".join(lines),
                         hint="check the fingerprints above on the hosts (ssh-keygen -lf /etc/ssh/ssh_host_*.pub), "
                              "then run again with --accept-new-host-keys (kops records them), or name a "
                              "known_hosts file in the inventory (ssh: {known_hosts: FILE})")
    if unknown:
        target = kops_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as fh:
            for n, _h, e, k in unknown:
                fh.write(f"{e} {k.get_name()} {k.get_base64()}\n")
                log(f"{n}: new host key accepted and recorded in {target}: {fingerprint(k)}")
                verified.append(Verified(n, e, k))
        os.chmod(target, 0o600)
    fd, tmp = tempfile.mkstemp(prefix="kops-known-hosts-")
    with os.fdopen(fd, "w") as fh:
        for v in verified:
            fh.write(f"{v.entry} {v.key.get_name()} {v.key.get_base64()}\n")
    return Path(tmp)
