"""`kops client-config` and `kops certs`: what a client of a secure cluster needs."""

from __future__ import annotations


from pathlib import Path

import click

from kops.core import paths
from kops.core.errors import InputError
from kops.cli.common import handle_errors, print_json, progress
from kops.cli.config import inventory_options

_name = click.option("--name", help="Cluster name (its inventory: the one it was made from).")


def _secure_target(spec_source, name=None):
    """The target (its spec: -i/--preset, or the inventory cluster NAME was made from) of a
    secure cluster; InputError for a plaintext one."""
    from kops.cli.cluster import Target

    t = Target(spec_source, name, allow_name=False)
    if not t.spec.security.tls:
        raise InputError(f"cluster {t.spec.name} has no security section (tls/sasl): clients connect in plaintext",
                         hint="add security: {tls: true, sasl: scram-sha-512} to the inventory"
                              + (f" ({t.source.split(' as ')[0][5:]})" if (t.source or "").startswith("file ") else "")
                              + f", then kops up{t.scope}")
    return t


@click.command("client-config")
@click.argument("user", required=False)
@inventory_options
@_name
@click.option("-o", "--output", "out", required=True, help="Folder to write into (made 0700).")
@handle_errors
def client_config(user, spec_source, name, out):
    """Write what a client needs to reach a secure cluster as USER (default: kops's own admin):
    ca.pem, client.properties (Kafka's Java tools) and librdkafka.conf, each 0600.

    \b
    Example: kops client-config app -i secure.yaml -o ./client && \\
             kafka-topics.sh --command-config ./client/client.properties --bootstrap-server ... --list
    """
    from kops.store import secrets, state
    from kops.model import topology
    from kops.orchestration.lifecycle import credentials

    if user is not None and not user.strip():
        raise InputError("client-config: the user name is empty",
                         hint="name a user of security.users, or leave USER out for kops's own admin")
    spec = _secure_target(spec_source, name).spec
    sec = spec.security
    user = user or secrets.ADMIN
    if user != secrets.ADMIN and user not in sec.users:
        raise InputError(f"cluster {spec.name} has no user {user!r}",
                         hint="users: " + ", ".join([secrets.ADMIN, *sec.users]))
    topo = topology.build(spec, "AAAAAAAAAAAAAAAAAAAAAA", state.ports(spec.name) if spec.ports == "auto" else None)
    credentials(spec, topo)    # the CA exists from here on
    password = secrets.passwords(spec.name, {u: us.password for u, us in sec.users.items()})[user]
    dest = Path(out)
    try:
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(f"-o {out}: cannot create the folder: {exc.strerror or exc}") from exc
    ca = dest / "ca.pem"
    proto = "SASL_SSL" if sec.sasl else "SSL"
    java = [f"bootstrap.servers={topo.bootstrap_servers}", f"security.protocol={proto}",
            "ssl.truststore.type=PEM", f"ssl.truststore.location={ca.resolve()}"]
    rdkafka = [f"bootstrap.servers={topo.bootstrap_servers}", f"security.protocol={proto}",
               f"ssl.ca.location={ca.resolve()}"]
    if sec.sasl:
        java += [f"sasl.mechanism={sec.mechanism}",
                 "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                 f'username="{user}" password="{password}";']
        rdkafka += [f"sasl.mechanisms={sec.mechanism}", f"sasl.username={user}", f"sasl.password={password}"]
    written = []
    for path, text in ((ca, secrets.ca_pem(spec.name)), (dest / "client.properties", "\n".join(java) + "\n"),
                       (dest / "librdkafka.conf", "\n".join(rdkafka) + "\n")):
        written.append(str(paths.write_output(path, text, "-o", mode=0o600)))
    progress(f"wrote the client settings of {user} for cluster {spec.name} (0600; they hold the password)")
    for p in written:
        click.echo(p)


@click.command("certs")
@inventory_options
@_name
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def certs(spec_source, name, output):
    """The cluster CA and node certificates kops made: names and expiry."""
    from kops.store import secrets

    t = _secure_target(spec_source, name)
    spec = t.spec
    rows = [{"what": w, "not_after": t.isoformat(), "names": n} for w, t, n in secrets.expiry(spec.name)]
    if output == "json":
        print_json(rows)
        return
    if not rows:
        click.echo(f"no certificates yet for {spec.name}: `kops up{t.scope}` makes them")
    for r in rows:
        click.echo(f"{r['what']:14} until {r['not_after'][:10]}  {', '.join(r['names']) or '(CA)'}")
