"""kops's record of a ZooKeeper-to-KRaft migration (``<state>/clusters/NAME/migration.json``):
its phases, the one it reached, and the guard that keeps every other command off a cluster
in the middle of one (kops.migrate runs the phases)."""

from __future__ import annotations

import json

from kops.core import paths
from kops.core.errors import InputError
from kops.model.spec import ClusterSpec

PHASES = ("controllers", "brokers-migrating", "metadata-migrated", "brokers-kraft", "controllers-kraft",
          "zookeeper-stopped")
FINAL = PHASES.index("controllers-kraft")   # from this phase on there is no way back
WORDS = {
    "controllers": "deploy the KRaft controllers with migration enabled",
    "brokers-migrating": "roll the brokers into migration mode",
    "metadata-migrated": "wait for the controller to copy the metadata from ZooKeeper",
    "brokers-kraft": "roll the brokers to KRaft",
    "controllers-kraft": "roll the controllers out of migration mode (finalizes: no rollback afterwards)",
    "zookeeper-stopped": "stop ZooKeeper and converge onto the KRaft inventory",
}


# -- the checkpoint ----------------------------------------------------------------------------------

def _file(name: str):
    return paths.state_dir() / "clusters" / name / "migration.json"


def checkpoint(name: str) -> dict:
    return paths.read_json(_file(name), "migration record", {},
                           hint="it says which phase the migration reached; restore it, or remove it only "
                                "if you know the cluster's state")


def _save(name: str, cp: dict) -> None:
    p = _file(name)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(cp, indent=1, sort_keys=True))
    tmp.replace(p)


def done_count(cp: dict) -> int:
    """How many phases are done (0..len(PHASES))."""
    return PHASES.index(cp["done"]) + 1 if cp.get("done") else 0


def in_progress(name: str) -> dict | None:
    """The checkpoint of a migration started and neither finished nor rolled back."""
    cp = checkpoint(name)
    return cp if cp and cp.get("state") == "migrating" else None


def guard(spec: ClusterSpec, scope: str = "") -> None:
    """`kops up` (or another change) while a migration is under way: refused, exit 2."""
    cp = in_progress(spec.name)
    if cp is None:
        return
    where = cp.get("current") or cp.get("done") or "not started"
    raise InputError(f"cluster {spec.name} is being migrated from ZooKeeper to KRaft (phase: {where}); "
                     "kops changes it only through `kops migrate` until the migration ends",
                     hint=next_step(cp, scope))


def next_step(cp: dict, scope: str = "") -> str:
    """What to run next on a migration under way (or a rollback of one that stopped)."""
    if cp.get("current") == "rollback":
        return (f"a rollback to ZooKeeper stopped: kops migrate{scope} --rollback finishes it; kops migrate{scope} "
                "--status says where it stands")
    back = done_count(cp) <= FINAL and cp.get("current") != PHASES[FINAL]
    return (f"kops migrate{scope} --to-kraft resumes it; kops migrate{scope} --status says where it stands"
            + (f"; kops migrate{scope} --rollback goes back to ZooKeeper" if back
               else "; a rollback is no longer possible"))


# -- specs and topologies ----------------------------------------------------------------------------

