"""The `kops` command. Its subcommands are imported when one is run, not before: `kops
--help` (and a shell's completion) starts in a fraction of the time the whole library takes
to import."""

from __future__ import annotations

import importlib

import click

from kops import __version__

# name -> ("module:attribute", its short help as `kops --help` lists it). The short help is
# the first sentence of the command's own docstring (tests/unit/test_cli_lazy.py holds them
# equal), kept here so that listing the commands imports none of them.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("kops.cli.cluster:up",
          'Bring a cluster up (default preset: zk-single-kafka-single) and wait until it is ready.'),
    "status": ("kops.cli.cluster:status",
              'Health of a cluster.'),
    "down": ("kops.cli.cluster:down",
            'Stop a cluster gracefully (brokers first); data is kept unless --purge.'),
    "check": ("kops.cli.cluster:check",
             'Smoke test: produce MESSAGES to a new replicated topic with acks=all, read them all back.'),
    "restart": ("kops.cli.cluster:restart",
               'Rolling restart of the Kafka nodes, one at a time, active controller last.'),
    "ls": ("kops.cli.cluster:ls",
          'List kops clusters on the Docker engine, with their bootstrap addresses.'),
    "logs": ("kops.cli.cluster:logs",
            'Print the last log lines of NODE (zoo1, kafka1, controller1, ...), or of every node, each line prefixed with its node.'),
    "env": ("kops.cli.cluster:env",
           'What a client or a CI job needs for a cluster: KAFKA_BOOTSTRAP_SERVERS (and, for a ZooKeeper-mode cluster, ZOOKEEPER_CONNECT), to evaluate in a shell.'),
    "init": ("kops.cli.config:init",
            "Write an inventory to start from: a preset's, named after its file (not after the preset, so that editing it never takes over the preset's own cluster)."),
    "upgrade": ("kops.cli.daytwo:upgrade",
               'Roll a running cluster onto Kafka VERSION: every problem first (exit 2, nothing changed), then one node at a time behind the readiness gates, the active controller last; then, with --finalize, the feature level.'),
    "migrate": ("kops.cli.daytwo:migrate",
               'Migrate a running ZooKeeper-mode cluster to KRaft, phase by phase, each a checkpoint: controllers deployed in migration mode, brokers rolled into migration, the metadata copied, brokers rolled to KRaft, controllers out of migration (no way back after this), ZooKeeper stopped.'),
    "client-config": ("kops.cli.security:client_config",
                     "Write what a client needs to reach a secure cluster as USER (default: kops's own admin): ca.pem, client.properties (Kafka's Java tools) and librdkafka.conf, each 0600."),
    "certs": ("kops.cli.security:certs",
             'The cluster CA and node certificates kops made: names and expiry.'),
    "render": ("kops.cli.config:render",
              "Render every node's files (and docker-compose.yml or systemd units) into a directory."),
    "dist": ("kops.cli.dist:dist_group",
            'Kafka distributions (official tarball, Maven assembly, local).'),
    "image": ("kops.cli.dist:image_group",
             'Kafka container images.'),
    "connect": ("kops.cli.connect:connect_group",
               "Kafka Connect connectors of a cluster (its workers' REST API)."),
    "topic": ("kops.cli.data:topic_group",
             'Create, list, describe, alter and delete topics.'),
    "produce": ("kops.cli.data:produce",
               'Send each line of stdin (or --file) to TOPIC as one message; flushes at the end.'),
    "consume": ("kops.cli.data:consume",
               'Print the messages of TOPIC, one per line (or per template), until -n COUNT, --timeout, --exit-at-end or Ctrl-C.'),
    "group": ("kops.cli.data:group_group",
             'List and describe consumer groups; reset their offsets.'),
    "exec": ("kops.cli.nodes:exec_",
            "Run COMMAND on NODE (kafka1, zoo1, controller1, ...) in the node's environment: Kafka's tools on PATH, KAFKA_BOOTSTRAP_SERVERS (the cluster network's) and KOPS_CLIENT_CONFIG (a ready client.properties)."),
    "shell": ("kops.cli.nodes:shell",
             "An interactive shell on NODE (bash, else sh), in the node's environment (see `kops exec --help`); a TTY when stdin is a terminal."),
    "debug": ("kops.cli.toolbox:debug_group",
              'Diagnostics of a cluster for a support ticket (secrets taken out).'),
    "fault": ("kops.cli.toolbox_faults:fault_group",
              'Inject a fault into one node of a kops cluster (kill, pause, slow, lose, partition), and heal it.'),
    "ui": ("kops.cli.ui:ui",
           'A local web console for the clusters kops manages: status, topics, consumer groups and messages.'),
    "balance": ("kops.cli.balance:balance",
                "Show how evenly the brokers share replicas, leaders and bytes, and the fewest moves that even them out."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when named (run, or asked for their help)."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        limit = formatter.width - 6 - max(len(n) for n in COMMANDS)
        rows = [(name, click.utils.make_default_short_help(short, limit)) for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kops")
def cli():
    """Stand up, check and tear down Apache Kafka clusters (ZooKeeper or KRaft),
    on Docker or on hosts over SSH.

    \b
    Exit codes: 0 ok, 1 failed or degraded, 2 bad input (nothing changed),
    3 cluster not found or stopped, 4 a wait timed out.
    """


def main() -> None:
    cli(prog_name="kops")
