"""`kops fault`: inject a fault into one node of a kops cluster, and heal it.

* kill: SIGKILL of the node's JVM (Docker: its container's main process; SSH: `systemctl
  kill -s KILL` of its unit, which systemd restarts, Restart=on-failure);
* pause: the node frozen (Docker: `docker pause`, the cgroup freezer; SSH: SIGSTOP of the
  unit's main process), thawed by heal;
* slow / lose: a network delay (``tc netem`` on the node's interfaces) and packet loss
  (nftables: a random share of the node's outgoing packets dropped);
* partition: the node cut off from the cluster's other nodes (nftables in its network
  namespace drops what comes from them and goes to them); ``clients=True`` also cuts the
  clients' path (Docker: the published ports, which arrive from the engine's gateway).

Docker runs the network commands from a short-lived helper container (kops/faults:1: the
base image kops builds on, with nftables and iproute2) that joins the node's network
namespace with NET_ADMIN; SSH runs them on the node's host (whose network every node of
that host shares). A fault lives as long as the namespace (a restarted container starts
clean). kops notes each fault it injected (kops.store.state.faults); heal undoes it and
drops the note. Only the nodes kops finds by its own labels (Docker) or records (SSH).
"""

from __future__ import annotations

import math
import re
import time

from kops.core.errors import InputError, KopsError
from kops.store import state

KINDS = ("kill", "pause", "slow", "lose", "partition")
TABLE = "kops_fault"      # the nftables table kops adds in a node's namespace
MAX_DELAY_MS = 60_000


# -- values -------------------------------------------------------------------------------------

def parse_delay(text: str) -> float:
    """``200ms``, ``0.2s``, ``200`` (ms) -> milliseconds, from 1 to 60000."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", str(text))
    if not m:
        raise InputError(f"--delay {text!r} is not a delay", hint="e.g. --delay 200ms (or 0.2s)")
    ms = float(m.group(1)) * (1000 if m.group(2) == "s" else 1)
    if not math.isfinite(ms) or not 1 <= ms <= MAX_DELAY_MS:
        raise InputError(f"--delay {text!r} is not from 1 ms to {MAX_DELAY_MS // 1000} s", hint="e.g. --delay 200ms")
    return ms


def parse_loss(text: str) -> float:
    """``5%`` or ``5`` -> percent, above 0 and at most 100."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", str(text))
    pct = float(m.group(1)) if m else math.nan
    if not m or not 0 < pct <= 100:
        raise InputError(f"--loss {text!r} is not a share of packets", hint="e.g. --loss 5% (above 0, at most 100)")
    return pct


# -- the network scripts (sh, run as root in the node's namespace) --------------------------------

_IFACES = "for i in $(ls /sys/class/net); do [ \"$i\" = lo ] && continue; "
_NEED_NFT = ("command -v nft >/dev/null || { echo 'kops: nft (nftables) is not installed where the node has "
             "its network' >&2; exit 3; }; ")


def net_script(*, delay_ms: float | None = None, loss_pct: float | None = None, cut: list[str] | None = None,
               clients: bool = False) -> str:
    """The sh script that puts a network fault on every interface of a namespace (but lo)."""
    rules_in, rules_out = [], []
    if clients:
        rules_in.append('iifname != "lo" drop')
        rules_out.append('oifname != "lo" drop')
    elif cut:
        addrs = ", ".join(sorted(set(cut)))
        rules_in.append(f"ip saddr {{ {addrs} }} drop")
        rules_out.append(f"ip daddr {{ {addrs} }} drop")
    if loss_pct:
        # numgen: 0..9999, so a tenth of a percent counts
        rules_out.append(f'oifname != "lo" numgen random mod 10000 < {max(1, int(round(loss_pct * 100)))} drop')
    parts = ["set -e; "]
    if rules_in or rules_out:
        table = (f"table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n"
                 f"  chain input {{\n    type filter hook input priority -10; policy accept;\n"
                 + "".join(f"    {r}\n" for r in rules_in) + "  }\n"
                 "  chain output {\n    type filter hook output priority -10; policy accept;\n"
                 + "".join(f"    {r}\n" for r in rules_out) + "  }\n"
                 "}\n")
        parts.append(_NEED_NFT + f"nft -f - <<'KOPS_EOF'\n{table}KOPS_EOF\n")
    if delay_ms:
        parts.append(_IFACES + f"tc qdisc replace dev \"$i\" root netem delay {delay_ms:g}ms 2>/tmp/kops-tc || "
                     "{ cat /tmp/kops-tc >&2; grep -q 'kind is unknown' /tmp/kops-tc && echo 'kops: this kernel "
                     "has no netem (CONFIG_NET_SCH_NETEM): no delay can be added' >&2; "
                     f"nft delete table inet {TABLE} 2>/dev/null || true; exit 4; }}; done\n")
    return "".join(parts)


def heal_script() -> str:
    """Undo whatever :func:`net_script` did (nothing there: nothing done)."""
    return (f"command -v nft >/dev/null && nft delete table inet {TABLE} 2>/dev/null; "
            + _IFACES + "tc qdisc show dev \"$i\" 2>/dev/null | grep -q netem && tc qdisc del dev \"$i\" root; "
            "done; true")


# -- inject and heal ------------------------------------------------------------------------------

def describe(rec: dict, now: float | None = None) -> str:
    """``paused since 18:02:11, heals at 18:02:31`` (what status shows on the node)."""
    kind = rec.get("kind")
    what = {"kill": "killed", "pause": "paused", "partition": "cut off from the other nodes"
            + (" and the clients" if rec.get("clients") else "")}.get(kind)
    if kind in ("slow", "lose"):
        bits = ([f"delay {rec['delay_ms']:g} ms"] if rec.get("delay_ms") else []) + \
            ([f"{rec['loss_pct']:g}% packet loss"] if rec.get("loss_pct") else [])
        what = " + ".join(bits) or kind
    words = f"{what or kind} since {_clock(rec.get('since'))}"
    until = rec.get("until")
    if until:
        late = (now or time.time()) > until + 5
        words += f", {'was to heal' if late else 'heals'} at {_clock(until)}"
    return words


def _clock(epoch) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if isinstance(epoch, (int, float)) else "?"


def _check_node(st, node: str, scope: str) -> None:
    if st.state == "not-found":
        raise KopsError(f"cluster {st.name} not found: kops injects faults only into clusters it made", exit_code=3,
                        hint="kops ls lists them")
    names = [n.name for n in st.nodes if n.state != "missing"]
    if node not in names:
        raise InputError(f"cluster {st.name} has no node {node!r}", hint="nodes: " + ", ".join(names))


def inject(st, provider, node: str, kind: str, *, delay_ms: float | None = None, loss_pct: float | None = None,
           clients: bool = False, duration: float | None = None, scope: str = "", log=lambda m: None) -> dict:
    """Put fault ``kind`` on ``node`` of the cluster whose status is ``st`` (found by kops);
    noted in kops's state. Returns the note."""
    if kind not in KINDS:
        raise InputError(f"no fault {kind!r}", hint="one of " + ", ".join(KINDS))
    _check_node(st, node, scope)
    have = state.faults(st.name).get(node)
    if have:
        raise InputError(f"{node} already has a fault: {describe(have)}",
                         hint=f"kops fault heal {node}{scope} first")
    if kind == "slow" and not delay_ms:
        raise InputError("slow needs --delay", hint="e.g. kops fault slow kafka2 --delay 200ms")
    if kind == "lose" and not loss_pct:
        raise InputError("lose needs --loss", hint="e.g. kops fault lose kafka2 --loss 5%")
    rec = {"kind": kind, "since": time.time(), "driver": st.driver}
    if duration:
        rec["until"] = rec["since"] + duration
    if kind == "kill":
        provider.kill_node(node)
    elif kind == "pause":
        provider.pause_node(node)
    else:
        cut = None
        if kind == "partition":
            peers = provider.node_peers(node)
            if not peers and not clients:
                raise KopsError(f"{node}: no other node of cluster {st.name} has an address of its own to cut it "
                                "off from (on one host, nodes share the network)")
            cut = sorted(peers.values())
            rec.update(cut_from=sorted(peers), clients=clients)
        if kind in ("slow", "lose"):
            rec.update({k: v for k, v in (("delay_ms", delay_ms), ("loss_pct", loss_pct)) if v})
        code, out = provider.net_script(node, net_script(delay_ms=delay_ms, loss_pct=loss_pct, cut=cut,
                                                         clients=clients))
        if code != 0:
            provider.net_script(node, heal_script())
            why = next((ln[len("kops: "):] for ln in out.splitlines() if ln.startswith("kops: ")), None)
            raise KopsError(f"{node}: the {kind} fault could not be put in place" + (f": {why}" if why else ""),
                            details=out.strip()[-1500:] or None,
                            hint="nothing was left in place" + ("; `kops fault lose` (nftables) works without "
                                                                "netem" if "netem" in (why or "") else ""))
    state.note_fault(st.name, node, rec)
    log(f"{node}: {describe(rec)}")
    return rec


def heal(cluster: str, provider, node: str | None = None, log=lambda m: None) -> list[str]:
    """Undo the faults kops noted for ``node`` (None: every node of the cluster); the nodes healed."""
    notes = state.faults(cluster)
    if node is not None and node not in notes:
        return []
    done = []
    for name, rec in sorted(notes.items()):
        if node is not None and name != node:
            continue
        kind = rec.get("kind")
        try:
            if kind in ("kill", "pause"):
                provider.resume_node(name)
            else:
                code, out = provider.net_script(name, heal_script())
                if code != 0:
                    raise KopsError(f"{name}: the network fault could not be taken away", details=out[-1000:])
        except KopsError as exc:
            if " is not running" not in exc.message and "not running:" not in exc.message:
                raise
            # the node restarted or stopped meanwhile: its namespace (and the fault) went with it
        state.forget_fault(cluster, [name])
        done.append(name)
        log(f"{name}: healed ({describe(rec)})")
    return done
