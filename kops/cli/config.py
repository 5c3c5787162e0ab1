"""`kops init` and `kops render`, and the -i/--preset options every command shares."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import click

from kops.model import inventory as invlib
from kops.core import paths
from kops.model.spec import DEFAULT_PRESET, NAME_RE
from kops.core.errors import InputError
from kops.cli.common import handle_errors, print_json, progress


def inventory_options(fn):
    """-i FILE / --preset NAME on a command; passes ``spec_source`` (a loader)."""

    @click.option("-i", "--inventory", "inventory", type=click.Path(dir_okay=False),
                  help="Inventory file (YAML cluster spec).")
    @click.option("--preset", help=f"A shipped preset (default {DEFAULT_PRESET}).")
    @click.option("--accept-new-host-keys", "accept_new", is_flag=True, envvar="KOPS_ACCEPT_NEW_HOST_KEYS",
                  help="SSH: trust hosts met for the first time and record their keys (a changed key is "
                       "still refused).")
    @functools.wraps(fn)
    def wrapper(*args, inventory=None, preset=None, accept_new=False, **kwargs):
        return fn(*args, spec_source=(inventory, preset, accept_new), **kwargs)

    return wrapper


def load_spec(spec_source):
    inventory, preset = spec_source[:2]
    return invlib.load(inventory, preset)


@click.command("init")
@click.option("--preset", default=DEFAULT_PRESET, show_default=True, help="Preset to start from.")
@click.option("-o", "--output", "out", default="cluster.yaml", show_default=True, help="File to write.")
@click.option("--name", help="The cluster's name (default: the file's name, e.g. dev for dev.yaml).")
@click.option("--any-port", is_flag=True, help="Write `ports: auto`: host ports picked free at the first "
                                               "`kops up` and kept for the cluster.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--list", "list_", is_flag=True, help="List the presets and exit.")
@handle_errors
def init(preset, out, name, any_port, force, list_):
    """Write an inventory to start from: a preset's, named after its file (not after the
    preset, so that editing it never takes over the preset's own cluster).

    \b
    Example: kops init --preset kraft-split -o dev.yaml && kops up -i dev.yaml
    """
    if list_:
        for pname in invlib.preset_names():
            first = invlib.preset_path(pname).read_text().splitlines()[0].lstrip("# ")
            click.echo(f"{pname:28} {first.split(':', 1)[-1].strip()}")
        return
    src = invlib.preset_path(preset)
    dest = Path(out)
    try:
        is_dir, exists = dest.is_dir(), dest.exists() or dest.is_symlink()
    except OSError as exc:   # a name too long for the file system, say
        raise InputError(f"-o {out[:80]!r}: {exc.strerror or exc}", hint="e.g. -o dev.yaml") from None
    if not out or is_dir:
        raise InputError(f"-o {out!r} is a folder, not a file", hint="e.g. -o dev.yaml")
    if exists and not force:
        raise InputError(f"{dest} exists; not overwriting it", hint="pass --force, or -o another file")
    cluster = name or _name_from(dest)
    if not NAME_RE.fullmatch(cluster):
        raise InputError(f"cluster name {cluster!r} is not DNS-safe",
                         hint="pass --name with 1-32 lowercase letters, digits and '-', starting with a letter")
    import yaml

    # a name YAML reads as something else (yes, on, null, 1e3) is written quoted
    scalar = cluster if yaml.safe_load(cluster) == cluster else f'"{cluster}"'
    text, n = re.subn(r"^name: .*$", f"name: {scalar}", src.read_text(), count=1, flags=re.M)
    if not n:
        text = f"name: {scalar}\n" + text
    if any_port:
        text = with_auto_ports(text)
    if re.search(r"^ports:\s*[\"']?auto\b", text, flags=re.M):
        text = auto_ports_header(text)
    invlib.loads(text, str(dest))   # what is written must load
    paths.write_output(dest, text, "-o")
    progress(f"wrote {dest} (cluster {cluster}, from preset {preset}); edit it, then: kops up -i {dest}")
    click.echo(str(dest))


AUTO_PORTS_NOTE = ("# Host ports: picked free by the first `kops up` and kept for the cluster "
                   "(`kops status` / `kops env` show them).")
_FIXED_ADDRESS = re.compile(r"(?:127\.0\.0\.1|localhost|host\.docker\.internal)?:\d{2,5}\b")


def with_auto_ports(text: str) -> str:
    """The inventory with ``ports: auto`` (replacing a ``ports:`` line, else after ``name:``)."""
    text, n = re.subn(r"^ports:.*$", "ports: auto", text, count=1, flags=re.M)
    if not n:
        text, n = re.subn(r"^(name: .*)$", r"\1\nports: auto", text, count=1, flags=re.M)
    return text if n else "ports: auto\n" + text


def auto_ports_header(text: str) -> str:
    """A ``ports: auto`` inventory's header comment names no fixed host port: the lines of
    the leading comment block that name one give way to a line saying how ports are picked."""
    lines = text.splitlines(keepends=True)
    head = 0
    while head < len(lines) and lines[head].startswith("#"):
        head += 1
    kept, at = [], None
    for line in lines[:head]:
        if _FIXED_ADDRESS.search(line):
            at = len(kept) if at is None else at   # where the first fixed address was
        else:
            kept.append(line)
    if AUTO_PORTS_NOTE + "\n" not in kept:
        kept.insert(len(kept) if at is None else at, AUTO_PORTS_NOTE + "\n")
    return "".join(kept + lines[head:])


MARKER = ".kops-render"


def _render_target(out: str, create: bool = True) -> Path:
    """The folder to render into: new, empty, or one kops rendered before (whose stale node
    folders are then replaced). Anything else is refused before a file is written."""
    if not out or not out.strip():
        raise InputError("-o needs a folder name", hint="e.g. -o out/")
    if not create:
        parent = Path(out).parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise InputError(f"-o {out}: {parent} is not a folder", hint="name a folder kops can create")
    dest = Path(out)
    if dest.exists() and not dest.is_dir():
        raise InputError(f"-o {out}: exists and is not a folder", hint="name a new or empty folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        raise InputError(f"-o {out}: the folder is not empty and was not rendered by kops",
                         hint="name a new or empty folder; kops re-renders only into its own output")
    if create:
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"-o {out}: cannot create the folder: {exc.strerror or exc}",
                             hint="name a folder kops can create (its parent must be a folder you can write)") from exc
    return dest


def _name_from(path: Path) -> str:
    """A DNS-safe cluster name from a file name: dev.yaml -> dev, My_Cluster.yml -> my-cluster."""
    stem = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-")[:32].strip("-")
    if not stem or not stem[0].isalpha():
        stem = ("c-" + stem)[:32].strip("-") if stem else "cluster"
    return stem


@click.command("render")
@inventory_options
@click.option("-o", "--output", "out", required=True, help="Directory to write the bundle into.")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text",
              help="What to print on stdout: the file list (text) or JSON.")
@handle_errors
def render(spec_source, out, output_format):
    """Render every node's files (and docker-compose.yml or systemd units) into a directory."""
    from kops.bundle import render as renderlib
    from kops.store import state
    from kops.model import topology
    from kops.orchestration.lifecycle import check_config, credentials

    spec = load_spec(spec_source)
    dest = _render_target(out, create=False)
    check_config(spec, progress)
    dest = _render_target(out)
    cid = state.cluster_id(spec) if spec.mode == "kraft" else "n/a"
    topo = topology.build(spec, cid, state.ports(spec.name) if spec.ports == "auto" else None)
    creds = credentials(spec, topo)
    files = renderlib.export(topo, creds)
    try:
        for stale in (p for p in dest.iterdir() if p.is_dir() and not any(r.startswith(p.name + "/") for r in files)):
            shutil.rmtree(stale)   # a node folder of an earlier render of this folder
        written = renderlib.write_export(files, dest, creds)
        (dest / MARKER).write_text(spec.name + "\n")
    except OSError as exc:
        raise InputError(f"cannot write the bundle into {dest}: {exc.strerror or exc}") from exc
    progress(f"rendered {len(written)} files for cluster {spec.name} ({spec.mode}, Kafka "
             f"{spec.kafka.version}, {len(topo.nodes)} nodes) into {out}"
             + ("; files holding keys or passwords are 0600" if creds else ""))
    if spec.driver == "docker":
        progress(f"start it with compose: cd {out} && docker compose up -d   (or: kops up)")
    if output_format == "json":
        print_json({"cluster": spec.name, "cluster_id": cid if spec.mode == "kraft" else None,
                    "files": [str(p) for p in written]})
    else:
        for p in written:
            click.echo(str(p))
