"""`kops init` and `kops render`, and the -i/--preset options every command shares."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import click

from .. import inventory as invlib
from ..spec import DEFAULT_PRESET
from ..errors import InputError
from .common import handle_errors, print_json, progress


def inventory_options(fn):
    """-i FILE / --preset NAME on a command; passes ``spec_source`` (a loader)."""

    @click.option("-i", "--inventory", "inventory", type=click.Path(dir_okay=False),
                  help="Inventory file (YAML cluster spec).")
    @click.option("--preset", help=f"A shipped preset (default {DEFAULT_PRESET}).")
    @functools.wraps(fn)
    def wrapper(*args, inventory=None, preset=None, **kwargs):
        return fn(*args, spec_source=(inventory, preset), **kwargs)

    return wrapper


def load_spec(spec_source):
    inventory, preset = spec_source
    return invlib.load(inventory, preset)


@click.command("init")
@click.option("--preset", default=DEFAULT_PRESET, show_default=True, help="Preset to start from.")
@click.option("-o", "--output", "out", default=None, help="File to write (default: <preset>.yaml here).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--list", "list_", is_flag=True, help="List the presets and exit.")
@handle_errors
def init(preset, out, force, list_):
    """Write a preset inventory to start from."""
    if list_:
        for name in invlib.preset_names():
            first = invlib.preset_path(name).read_text().splitlines()[0].lstrip("# ")
            click.echo(f"{name:28} {first.split(':', 1)[-1].strip()}")
        return
    src = invlib.preset_path(preset)
    dest = Path(out or f"{preset}.yaml")
    if dest.exists() and not force:
        raise InputError(f"{dest} exists; not overwriting it", hint="pass --force, or -o another file")
    shutil.copyfile(src, dest)
    progress(f"wrote {dest} from preset {preset}; edit it, then: kops up -i {dest}")
    click.echo(str(dest))


@click.command("render")
@inventory_options
@click.option("-o", "--output", "out", required=True, help="Directory to write the bundle into.")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text",
              help="What to print on stdout: the file list (text) or JSON.")
@handle_errors
def render(spec_source, out, output_format):
    """Render every node's files (and docker-compose.yml or systemd units) into a directory."""
    from .. import render as renderlib
    from .. import state, topology

    spec = load_spec(spec_source)
    cid = state.cluster_id(spec) if spec.mode == "kraft" else "n/a"
    topo = topology.build(spec, cid)
    files = renderlib.export(topo)
    written = renderlib.write_export(files, Path(out))
    progress(f"rendered {len(written)} files for cluster {spec.name} ({spec.mode}, Kafka "
             f"{spec.kafka.version}, {len(topo.nodes)} nodes) into {out}")
    if spec.driver == "docker":
        progress(f"start it with compose: cd {out} && docker compose up -d   (or: kops up)")
    if output_format == "json":
        print_json({"cluster": spec.name, "cluster_id": cid if spec.mode == "kraft" else None,
                    "files": [str(p) for p in written]})
    else:
        for p in written:
            click.echo(str(p))
