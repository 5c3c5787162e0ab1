"""The `kops` command."""

from __future__ import annotations

import click

from kops import __version__
from kops.cli.cluster import check, down, env, logs, ls, restart, status, up
from kops.cli.config import init, render
from kops.cli.connect import connect_group
from kops.cli.daytwo import migrate, upgrade
from kops.cli.data import consume, group_group, produce, topic_group
from kops.cli.dist import dist_group, image_group
from kops.cli.nodes import exec_, shell
from kops.cli.security import certs, client_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kops")
def cli():
    """Stand up, check and tear down Apache Kafka clusters (ZooKeeper or KRaft),
    on Docker or on hosts over SSH.

    \b
    Exit codes: 0 ok, 1 failed or degraded, 2 bad input (nothing changed),
    3 cluster not found or stopped, 4 a wait timed out.
    """


for _cmd in (up, status, down, check, restart, ls, logs, env):
    cli.add_command(_cmd)
cli.add_command(init)
cli.add_command(upgrade)
cli.add_command(migrate)
cli.add_command(client_config)
cli.add_command(certs)
cli.add_command(render)
cli.add_command(dist_group)
cli.add_command(image_group)
cli.add_command(connect_group)
for _cmd in (topic_group, produce, consume, group_group):
    cli.add_command(_cmd)
cli.add_command(exec_)
cli.add_command(shell)


def main() -> None:
    cli(prog_name="kops")
