"""`kops debug bundle`: one ``.tar.gz`` with what a support engineer asks for first, the
secrets taken out.

Inside (``<cluster>-debug-<UTC time>/``):
  status.json                 what `kops status --output json` says
  inventory.yaml              the inventory as kops read it (when known)
  kafka/                      Kafka's view: topics with partitions, leaders, ISR and configs,
                              consumer groups with their lag, log dir sizes per broker,
                              the KRaft quorum or ZooKeeper's ``srvr``
  nodes/<node>/state.json     container/unit state, exit code, OOM, restarts
  nodes/<node>/log.txt        its last log lines
  nodes/<node>/files/...      its rendered files as they are on the node (files holding
                              credentials withheld, every other one redacted)
  nodes/<node>/facts.txt      clock, OS, memory, open-file limit, data folder disk use,
                              each JVM's command line (flags), resident memory and threads
  engine.json                 the Docker engine's version (Docker) or nothing (SSH: facts)
  README.txt                  what was collected, what could not be and why

Every text is redacted (kops.core.redact: passwords, private keys, and every secret kops
keeps for the cluster) and the archive is then scanned for each known secret: one found
fails the command and no file is left (fail closed).
"""

from __future__ import annotations

import datetime
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kops.core.errors import KopsError
from kops.core.redact import redact
from kops.orchestration import lifecycle
from kops.store import secrets

# A fixed script (no inventory value in it): the data folder comes as "$1", an argument.
FACTS = r"""
echo "== clock (UTC epoch seconds)"; date -u +%s.%N
echo "== system"; uname -srm; (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
echo "== memory"; grep -E '^(MemTotal|MemAvailable|SwapTotal):' /proc/meminfo
echo "== open files (soft limit of this shell)"; ulimit -n
echo "== data folder $1"; df -Pk "$1" 2>&1 | tail -n 1; du -sk "$1" 2>/dev/null
echo "== JVMs"
for p in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  case "$cmd" in */java\ *|java\ *)
    echo "pid ${p#/proc/}: $cmd"
    grep -E '^(VmRSS|VmHWM|Threads):' "$p/status" 2>/dev/null
    gc=$(echo "$cmd" | sed -n 's/.*-Xlog:gc[^:]*:file=\([^: ]*\).*/\1/p')
    if [ -n "$gc" ] && [ -r "$gc" ]; then echo "== GC log $gc (last 40 lines)"; tail -n 40 "$gc"; fi;;
  esac
done
"""
TEXT_CONFIGS = (".properties", ".cfg", ".conf", ".yaml", ".yml", ".json", ".xml")   # redacted, not withheld
LOG_LINES = 500


@dataclass
class Report:
    path: Path
    files: int
    bytes: int
    seconds: float
    missing: list[str] = field(default_factory=list)   # what could not be collected, and why
    secrets_checked: int = 0

    def as_dict(self) -> dict:
        return {"path": str(self.path), "files": self.files, "bytes": self.bytes,
                "seconds": round(self.seconds, 1), "missing": self.missing,
                "secrets_checked": self.secrets_checked}


class _Archive:
    """Members collected in memory, every text redacted on the way in."""

    def __init__(self, root: str, known: list[str]):
        self.root, self.known = root, known
        self.members: dict[str, bytes] = {}

    def text(self, rel: str, content: str) -> None:
        self.members[f"{self.root}/{rel}"] = redact(content, self.known).encode()

    def json(self, rel: str, data) -> None:
        self.text(rel, json.dumps(data, indent=2, sort_keys=True, default=str))

    def leaks(self) -> list[str]:
        """Members that still hold a known secret (never expected: the last guard)."""
        return sorted(name for name, raw in self.members.items()
                      if any(len(k) >= 8 and k.encode() in raw for k in self.known))

    def write(self, path: Path) -> int:
        tmp = path.with_name(path.name + ".part")
        with tarfile.open(tmp, "w:gz") as tar:
            for name, raw in sorted(self.members.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(raw), 0o600, int(time.time())
                tar.addfile(info, io.BytesIO(raw))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path.stat().st_size


def _try(missing: list[str], what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except KopsError as exc:
        missing.append(f"{what}: {exc.message}")
    except Exception as exc:  # noqa: BLE001 - a bundle collects what it can and says what it could not
        missing.append(f"{what}: {exc.__class__.__name__}: {exc}")
    return None


def default_path(cluster: str, now: datetime.datetime | None = None) -> Path:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return Path(f"{cluster}-debug-{now:%Y%m%dT%H%M%SZ}.tar.gz")


def bundle(spec, provider, out: Path, *, name: str, lines: int = LOG_LINES, log=lambda m: None) -> Report:
    """Collect the cluster's diagnostics into ``out`` (a .tar.gz, mode 0600)."""
    t0 = time.monotonic()
    cluster = spec.name if spec is not None else name
    known = secrets.known(cluster)
    root = out.name[: -len(".tar.gz")] if out.name.endswith(".tar.gz") else out.stem
    ar, missing = _Archive(root, known), []
    log(f"cluster {cluster}: status")
    st = lifecycle.get_status(spec, provider, name=cluster)
    if st.state == "not-found":
        raise KopsError(f"cluster {cluster} not found: nothing to collect", exit_code=3)
    ar.json("status.json", st.as_dict())
    if spec is not None:
        ar.text("inventory.yaml", _inventory_yaml(spec))
    topo, bundle_, observed = lifecycle._observe(spec, provider)
    for node, obs in sorted(observed.nodes.items()):
        log(f"{node}: state, logs, files, facts")
        ar.json(f"nodes/{node}/state.json", {
            "state": obs.state, "running": obs.running, "exit_code": obs.exit_code, "role": obs.role,
            "id": obs.id, "where": obs.where, "oom_killed": obs.oom, "crashed": obs.crashed,
            "stopped_by_kops": obs.stopped_by_kops, "started_at": obs.started_at, "finished_at": obs.finished_at})
        ar.text(f"nodes/{node}/log.txt", _try(missing, f"{node} logs", provider.tail, node, lines) or "")
        _node_files(ar, missing, provider, node, obs, bundle_)
        if obs.running:
            data_dir = bundle_.nodes[node].layout.data_dir if bundle_ is not None and node in bundle_.nodes else "/"
            before = time.time()
            res = _try(missing, f"{node} facts", provider.exec, node, ["sh", "-c", FACTS, "kops", data_dir], timeout=60)
            after = time.time()
            if res is not None:
                code, text = res
                ar.text(f"nodes/{node}/facts.txt", text + _clock_words(text, (before + after) / 2)
                        + ("" if code == 0 else f"\n(exit code {code})\n"))
    log("Kafka's view: topics, groups, log dirs, quorum")
    _kafka_view(ar, missing, st, observed, provider, topo, bundle_)
    dirs = _log_dirs(missing, provider, topo, bundle_, observed) if st.bootstrap else None
    if dirs:
        ar.text("kafka/log_dirs.json", dirs)
    eng = getattr(provider, "engine_facts", None)
    if eng is not None:
        ar.json("engine.json", _try(missing, "engine version", eng) or {})
    ar.text("README.txt", _readme(cluster, st, missing))
    leaked = ar.leaks()
    if leaked:   # the redaction missed one: no file at all rather than a secret in a support ticket
        raise KopsError(f"the debug bundle of {cluster} would carry a secret in {', '.join(leaked)}; nothing written",
                        hint="this is a kops bug: report it (without the bundle)")
    size = ar.write(out)
    return Report(out, len(ar.members), size, time.monotonic() - t0, missing, len(known))


def _inventory_yaml(spec) -> str:
    import yaml

    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)


def _node_files(ar: _Archive, missing: list[str], provider, node: str, obs, bundle_) -> None:
    nb = bundle_.nodes.get(node) if bundle_ is not None else None
    paths = sorted(nb.files) if nb is not None else sorted(obs.files or {})
    # a file holding credentials: a config is included redacted (its passwords masked, then
    # checked absent), a key or keystore is withheld
    secret = set(nb.secret) if nb is not None else {p for p in paths if "jaas" in p or p.endswith(
        (".key", ".p12", ".jks", "client.properties", "server.properties"))}
    withheld = {p for p in secret if not p.endswith(TEXT_CONFIGS) or p.rsplit("/", 1)[-1].startswith("node.")}
    readable = [p for p in paths if p not in withheld]
    got = _try(missing, f"{node} files", provider.read_files, node, readable) or {}
    for p in readable:
        if p in got:
            ar.text(f"nodes/{node}/files{p}", got[p])
    if withheld:
        ar.text(f"nodes/{node}/files/WITHHELD.txt", "These files hold credentials and are not in the bundle:\n"
                + "".join(f"  {p}\n" for p in sorted(withheld)))


def _clock_words(facts: str, local: float) -> str:
    """The node's clock against this machine's, from the epoch the script printed."""
    lines = facts.splitlines()
    try:
        at = lines.index("== clock (UTC epoch seconds)")
        offset = float(lines[at + 1]) - local
    except (ValueError, IndexError):
        return ""
    return f"== clock offset from the control machine: {offset:+.3f} s (within the exec's round trip)\n"


def _kafka_view(ar: _Archive, missing: list[str], st, observed, provider, topo, bundle_) -> None:
    from kops.kafka import data

    if st.bootstrap:
        sess = _try(missing, "Kafka client", _session, st)
        if sess is not None:
            topics = _try(missing, "topics", data.list_topics, sess, internal=True) or []
            described = {}
            for t in topics:
                described[t["topic"]] = _try(missing, f"topic {t['topic']}", data.describe_topic, sess, t["topic"])
            ar.json("kafka/topics.json", described)
            groups = _try(missing, "consumer groups", data.list_groups, sess) or []
            ar.json("kafka/groups.json", {g["group"]: _try(missing, f"group {g['group']}", data.describe_group,
                                                           sess, g["group"]) for g in groups})
    for node, obs in sorted(observed.nodes.items()):
        if not obs.running:
            continue
        if obs.role == "zookeeper":
            srvr = _try(missing, f"{node} srvr", provider.zk_srvr, node)
            if srvr:
                ar.text(f"kafka/zookeeper-{node}-srvr.txt", srvr)
        elif obs.role in ("controller", "combined"):
            q = _try(missing, f"{node} quorum state", provider.quorum_state, node)
            if q:
                ar.json(f"kafka/quorum-{node}.json", q)


def _session(st):
    from kops.kafka import data

    client = lifecycle.client_for(st.name, st.bootstrap, st.security)
    return data.Session(client.bootstrap, dict(client.settings), 15)


def _log_dirs(missing: list[str], provider, topo, bundle_, observed) -> str | None:
    """Kafka's own LogDirsCommand in a running broker (kops.kafka.balance.log_dirs, the
    same as `kops balance`'s bytes): every broker's log dirs with each partition's size, as JSON."""
    from kops.kafka import balance

    if balance.runner_of(bundle_, observed) is None:
        missing.append("log dir sizes: no running broker of the inventory to ask from")
        return None
    return _try(missing, "log dir sizes", balance.log_dirs, provider, topo, bundle_, observed)


def _readme(cluster: str, st, missing: list[str]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return (f"kops debug bundle of cluster {cluster}, made {now}\n"
            f"state: {st.state}; mode {st.mode}; Kafka {st.version}; driver {st.driver}\n\n"
            "Secrets are redacted (****): passwords, private keys and every secret kops keeps for the\n"
            "cluster; files that hold credentials are listed in nodes/*/files/WITHHELD.txt, not included.\n"
            + ("\nNot collected:\n" + "".join(f"  - {m}\n" for m in missing) if missing else "\nEverything was collected.\n"))
