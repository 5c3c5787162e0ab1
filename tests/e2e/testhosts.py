"""VM-like test hosts: containers of the offline base image with systemd as PID 1 and sshd,
on a bridge network the tests create, reached over real SSH with a key the tests make.

Everything carries the label ``io.kops.testhost`` so a later run removes leftovers first.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

BASE_IMAGE = os.environ.get("KOPS_BASE_IMAGE", "kops-base:bookworm-jre17")
LABEL = "io.kops.testhost"


@dataclass
class TestHost:
    name: str
    address: str
    container: object


def cleanup(client: docker.DockerClient, group: str | None = None) -> None:
    flt = {"label": f"{LABEL}={group}" if group else LABEL}
    for c in client.containers.list(all=True, filters=flt):
        c.remove(force=True, v=True)
    for n in client.networks.list(filters=flt):
        n.remove()


def make_key(tmp: Path) -> Path:
    key = tmp / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _put(container, path: str, name: str, data: bytes, mode: int = 0o600) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode = len(data), mode
        tar.addfile(ti, io.BytesIO(data))
    container.put_archive(path, buf.getvalue())


def start_hosts(client: docker.DockerClient, group: str, names: list[str], key: Path,
                timeout: float = 90) -> list[TestHost]:
    cleanup(client, group)
    net = client.networks.create(f"kops-test-{group}", driver="bridge", labels={LABEL: group})
    hosts = []
    for name in names:
        c = client.containers.run(
            BASE_IMAGE, ["/lib/systemd/systemd"], name=f"kops-test-{group}-{name}", hostname=name,
            detach=True, network=net.name, labels={LABEL: group},
            cap_add=["SYS_ADMIN"], security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
            tmpfs={"/run": "", "/run/lock": ""}, environment={"container": "docker"},
        )
        hosts.append(c)
    pub = (key.with_suffix(".pub")).read_bytes()
    out = []
    deadline = time.monotonic() + timeout
    for c in hosts:
        c.exec_run(["mkdir", "-p", "/root/.ssh"])
        _put(c, "/root/.ssh", "authorized_keys", pub)
        while True:
            res = c.exec_run(["sh", "-c", "ssh-keygen -A >/dev/null 2>&1; systemctl restart ssh && "
                                          "systemctl is-active ssh"])
            if res.exit_code == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{c.name}: sshd did not start: {res.output.decode()[-500:]}")
            time.sleep(1)
        c.reload()
        addr = c.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        out.append(TestHost(c.attrs["Config"]["Hostname"], addr, c))
    write_known_hosts(out, known_hosts_of(key))
    return out


def known_hosts_of(key: Path) -> Path:
    return key.parent / "known_hosts"


def host_keys(host: TestHost) -> list[str]:
    """The host's public keys, read out of band (docker exec), as "type base64" lines."""
    res = host.container.exec_run(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"])
    assert res.exit_code == 0, res.output
    return [" ".join(line.split()[:2]) for line in res.output.decode().splitlines() if line.strip()]


def write_known_hosts(hosts: list[TestHost], path: Path) -> Path:
    """A known_hosts file of the hosts' keys, verified the way an operator would: read on
    the host itself, not taken from the network."""
    path.write_text("".join(f"{h.address} {k}\n" for h in hosts for k in host_keys(h)))
    return path


def inventory(name: str, hosts: list[TestHost], key: Path, *, mode: str, version: str,
              roles: list[str], extra: str = "", known_hosts: Path | None | bool = True) -> str:
    """``known_hosts``: True, the hosts' keys read out of band next to ``key``; a path; or
    False/None: no file named (kops then uses ~/.ssh/known_hosts and its own)."""
    lines = [f"name: {name}", "profile: fast", "kafka:", f"  version: {version}", f"  mode: {mode}", "  heap: 384m"]
    lines += ["  config:", "    min.insync.replicas: 2", "    default.replication.factor: 3"]
    if mode == "zookeeper":
        lines += ["zookeeper:", "  heap: 128m"]
    lines += ["driver: ssh"]
    if known_hosts:
        lines.append(f"ssh: {{known_hosts: {known_hosts_of(key) if known_hosts is True else known_hosts}}}")
    lines += ["hosts:"]
    for h in hosts:
        lines.append(f"  {h.name}: {{address: {h.address}, user: root, key: {key}, roles: [{', '.join(roles)}]}}")
    return "\n".join(lines) + "\n" + extra
