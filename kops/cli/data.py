"""`kops topic`, `kops produce`, `kops consume`, `kops group`: a cluster's data, from
wherever kops runs (confluent-kafka). The target is a kops cluster (-i/--preset/--name,
with its own TLS/SASL settings) or any --bootstrap-server (plus --command-config / -X)."""

from __future__ import annotations

import functools
import json
import sys

import click
from rich import box
from rich.table import Table

from kops.kafka import data, messages
from kops.core.errors import InputError
from kops.cli.common import Seconds, err_console, handle_errors, out_console, print_json, progress
from kops.cli.config import inventory_options


def target_options(fn):
    """-i/--preset/--name (a kops cluster) or -b/--bootstrap-server (any cluster), plus
    client settings; passes ``session`` (a data.Session, resolved lazily)."""

    @inventory_options
    @click.option("--name", help="Cluster name (instead of an inventory).")
    @click.option("-b", "--bootstrap-server", "bootstrap", metavar="HOST:PORT[,...]",
                  help="Any Kafka cluster (instead of a kops cluster).")
    @click.option("--command-config", type=click.Path(dir_okay=False),
                  help="Client settings: a Java client.properties or a librdkafka.conf.")
    @click.option("-X", "client_set", multiple=True, metavar="KEY=VALUE",
                  help="A librdkafka setting (repeatable), e.g. -X security.protocol=SSL.")
    @click.option("--request-timeout", default=30, show_default=True, type=Seconds(1, 3600),
                  help="Seconds to wait for the cluster's answers.")
    @functools.wraps(fn)
    def wrapper(*args, spec_source, name, bootstrap, command_config, client_set, request_timeout, **kwargs):
        def session() -> data.Session:
            return _session(spec_source, name, bootstrap, command_config, client_set, request_timeout)
        return fn(*args, session=session, **kwargs)

    return wrapper


def _session(spec_source, name, bootstrap, command_config, client_set, timeout) -> data.Session:
    overrides = data.read_command_config(command_config) if command_config else {}
    overrides.update(data.parse_settings(client_set))
    if bootstrap:
        if name or spec_source[0] or spec_source[1]:
            raise InputError("give --bootstrap-server, or a kops cluster (-i/--preset/--name), not both")
        return data.Session(bootstrap, overrides, timeout)
    from kops.orchestration import lifecycle
    from kops.cli.cluster import Target

    t = Target(spec_source, name)
    with t.provider() as prov:
        client = lifecycle.client_of(t.spec, prov, name=t.name, scope=t.scope)
    return data.Session(client.bootstrap, {**dict(client.settings), **overrides}, timeout)


def _table(cols, rows) -> None:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in cols:
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(*[("-" if v is None else str(v)) for v in r])
    out_console.print(t)


def _ids(values) -> str:
    return ",".join(map(str, values))


output_option = click.option("--output", type=click.Choice(["table", "json"]), default="table")


# -- topics --------------------------------------------------------------------------------------------

@click.group("topic")
def topic_group():
    """Create, list, describe, alter and delete topics.

    \b
    Example: kops topic create orders -p 6 -r 3 -c retention.ms=86400000 --preset kraft-multiple
    """


@topic_group.command("create")
@click.argument("topic")
@click.option("-p", "--partitions", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("-r", "--replication-factor", type=click.IntRange(min=1, max=1000),
              help="Replicas per partition (default: the brokers' default.replication.factor).")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE", help="A topic config (repeatable).")
@click.option("--if-not-exists", is_flag=True, help="Exit 0 when the topic exists already.")
@target_options
@handle_errors
def topic_create(topic, partitions, replication_factor, configs, if_not_exists, session):
    """Create TOPIC.

    \b
    Example: kops topic create orders -p 3 -r 1 -c cleanup.policy=compact --name dev
    """
    data.check_topic(topic, "TOPIC")
    cfg = data.parse_configs(configs)
    made = data.create_topic(session(), topic, partitions, replication_factor, cfg, if_not_exists=if_not_exists)
    click.echo(f"topic {topic} " + ("created" if made else "exists already; not changed"))


@topic_group.command("list")
@click.option("-a", "--all", "all_", is_flag=True, help="Also internal topics (__consumer_offsets, ...).")
@output_option
@target_options
@handle_errors
def topic_list(all_, output, session):
    """List topics (internal ones with --all).

    \b
    Example: kops topic list --name dev --output json
    """
    rows = data.list_topics(session(), internal=all_)
    if output == "json":
        print_json(rows)
    elif not rows:
        err_console.print("no topics" + ("" if all_ else " (--all shows the internal ones)"), markup=False)
    else:
        _table(["TOPIC", "PARTITIONS", "REPLICAS"], [(r["topic"], r["partitions"], r["replication_factor"])
                                                    for r in rows])


@topic_group.command("describe")
@click.argument("topic")
@output_option
@target_options
@handle_errors
def topic_describe(topic, output, session):
    """Partitions of TOPIC (leader, replicas, ISR, low and high offsets) and the configs set on it.

    \b
    Example: kops topic describe orders --name dev
    """
    data.check_topic(topic, "TOPIC")
    d = data.describe_topic(session(), topic)
    if output == "json":
        print_json(d)
        return
    out_console.print(f"topic {d['topic']} · {len(d['partitions'])} partitions · replication "
                      f"{d['replication_factor']} · {d['messages']} messages", markup=False)
    _table(["PARTITION", "LEADER", "REPLICAS", "ISR", "LOW", "HIGH"],
           [(p["partition"], p["leader"], _ids(p["replicas"]), _ids(p["isr"]), p["low"], p["high"])
            for p in d["partitions"]])
    if d["configs"]:
        out_console.print("configs set on the topic:", markup=False)
        for k, v in d["configs"].items():
            out_console.print(f"  {k}={v}", markup=False)
    else:
        out_console.print("configs: all defaults", markup=False)


@topic_group.command("alter")
@click.argument("topic")
@click.option("-p", "--partitions", type=click.IntRange(min=1), help="The new (larger) partition count.")
@click.option("-c", "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config (repeatable).")
@click.option("-d", "--delete", "deletes", multiple=True, metavar="KEY",
              help="Delete a config: back to the default (repeatable).")
@target_options
@handle_errors
def topic_alter(topic, partitions, sets, deletes, session):
    """Add partitions to TOPIC, set or delete its configs.

    \b
    Example: kops topic alter orders -p 12 -c retention.ms=3600000 -d cleanup.policy --name dev
    """
    data.check_topic(topic, "TOPIC")
    cfg = data.parse_configs(sets)
    dels = list(data.parse_configs([f"{k}=x" for k in deletes], "-d"))
    if partitions is None and not cfg and not dels:
        raise InputError("nothing to alter", hint="give -p N, -c KEY=VALUE or -d KEY")
    done = data.alter_topic(session(), topic, partitions=partitions, set_configs=cfg, delete_configs=dels)
    click.echo(f"topic {topic}: " + ("; ".join(done) if done else f"already has {partitions} partitions; "
                                                                   "nothing changed"))


@topic_group.command("delete")
@click.argument("topic")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@target_options
@handle_errors
def topic_delete(topic, yes, session):
    """Delete TOPIC and its messages (asks first unless --yes).

    \b
    Example: kops topic delete orders --yes --name dev
    """
    data.check_topic(topic, "TOPIC")
    s = session()
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"deleting topic {topic} needs confirmation, and there is no terminal to ask on",
                             hint="pass --yes")
        click.confirm(f"delete topic {topic} and all its messages?", abort=True, err=True)
    data.delete_topic(s, topic)
    click.echo(f"topic {topic} deleted")


# -- produce ----------------------------------------------------------------------------------------------

def _headers(items) -> list[tuple[str, str]]:
    out = []
    for h in items:
        k, sep, v = h.partition("=")
        if not sep or not k:
            raise InputError(f"-H {h!r} is not key=value", hint="e.g. -H source=batch7")
        out.append((k, v))
    return out


@click.command("produce")
@click.argument("topic")
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), help="Read lines from FILE (default stdin).")
@click.option("-k", "--key-separator", metavar="SEP", help="Split each line at the first SEP into key and value "
                                                            "(a line without SEP: no key).")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE",
              help="A header on every message (repeatable).")
@click.option("--partition", type=click.IntRange(min=0), help="Send every message to this partition.")
@click.option("--acks", type=click.Choice(["all", "-1", "1", "0"]), default="all", show_default=True)
@click.option("--compression", type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]), default="none",
              show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Print each message's partition and offset (stdout).")
@target_options
@handle_errors
def produce(topic, file_, key_separator, headers, partition, acks, compression, verbose, session):
    """Send each line of stdin (or --file) to TOPIC as one message; flushes at the end.

    A one-line summary goes to stderr; exit 1 with the delivery error if any message fails.

    \b
    Example: printf 'k1:hello\\nk2:world\\n' | kops produce orders -k : -H src=cli --name dev
    """
    data.check_topic(topic, "TOPIC")
    hdrs = _headers(headers)
    if key_separator == "":
        raise InputError("--key-separator is empty", hint="e.g. -k : or -k $'\\t'")
    s = session()
    stream = file_ or sys.stdin
    lines = (line.rstrip("\n").rstrip("\r") for line in stream)

    def shown(d: messages.Delivery):
        if verbose and d.error is None:
            click.echo(f"{d.index}\tpartition {d.partition}\toffset {d.offset}")

    res = messages.produce(s, topic, lines, key_separator=key_separator, headers=hdrs, partition=partition,
                       acks=acks, compression=compression, on_delivery=shown)
    parts = ",".join(map(str, sorted(res.partitions))) or "-"
    if res.errors:
        from kops.core.errors import KopsError

        raise KopsError(f"{len(res.errors)} of {res.sent} message(s) to {topic} failed: {res.errors[0]}",
                        hint=f"{res.delivered} delivered (partitions {parts})")
    progress(f"produced {res.delivered} message(s) to {topic} (partitions {parts}, acks={acks}) "
             f"in {res.seconds:.2f} s")


# -- consume ----------------------------------------------------------------------------------------------

@click.command("consume")
@click.argument("topic")
@click.option("--from", "from_", metavar="WHERE",
              help="beginning | end | OFFSET | -N (the last N of each partition) | @TIME (ms or ISO 8601) | "
                   "stored.  [default: beginning; with --group, its committed offsets]")
@click.option("-n", "--count", type=click.IntRange(min=1), help="Exit after COUNT messages.")
@click.option("-g", "--group", help="Consume as this group: offsets of what is printed are committed.")
@click.option("--partition", "partitions", multiple=True, type=click.IntRange(min=0),
              help="Only this partition (repeatable).")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE",
              help="kcat-style: %t topic, %p partition, %o offset, %T timestamp (ms), %k key, %v (or %s) value, "
                   "%K/%S key/value length, %h headers (k=v,...), %%; escapes \\n \\t \\r \\\\ \\0.  "
                   "[default: '%v\\n']")
@click.option("--output", type=click.Choice(["text", "json"]), default="text",
              help="json: one JSON object per message and line.")
@click.option("--timeout", type=Seconds(0.1), metavar="SECONDS",
              help="Exit after SECONDS without a message: exit 0, or 4 when -n was given and not reached.")
@click.option("-e", "--exit-at-end", is_flag=True, help="Exit at the end of every partition (exit 0).")
@target_options
@handle_errors
def consume(topic, from_, count, group, partitions, fmt, output, timeout, exit_at_end, session):
    """Print the messages of TOPIC, one per line (or per template), until -n COUNT, --timeout,
    --exit-at-end or Ctrl-C.

    \b
    Exit 0 when -n COUNT messages were printed, at the end with -e, or idle for --timeout
    seconds without -n; 4 when --timeout passes before -n COUNT; 130 on Ctrl-C (the consumer
    is closed first: a group's offsets of what was printed are committed). A summary goes to
    stderr.
    Example: kops consume orders --from -10 -f '%p:%o %k=%v %h\\n' -n 10 --name dev
    """
    data.check_topic(topic, "TOPIC")
    if fmt and output == "json":
        raise InputError("-f and --output json exclude each other")
    parts = messages.parse_format(fmt if fmt is not None else messages.DEFAULT_FORMAT)
    start = messages.parse_start(from_) if from_ else None
    s = session()
    stats = messages.ConsumeStats()
    out = sys.stdout.buffer         # keys and values are written as they are (bytes)
    try:
        for rec in messages.consume(s, topic, start=start, group=group, partitions=list(partitions) or None,
                                count=count, idle=timeout, until_end=exit_at_end, stats=stats):
            if output == "json":
                out.write(json.dumps(rec.as_dict(), ensure_ascii=False).encode() + b"\n")
            else:
                out.write(messages.render(parts, rec))
            out.flush()
    except KeyboardInterrupt:
        progress(f"interrupted: {stats.received} message(s) consumed from {topic}; consumer closed")
        sys.exit(130)
    except BrokenPipeError:   # `| head`: the reader has what it wanted
        sys.exit(0)
    why = {"idle": f", then {timeout or 0:g} s without a message", "end": ", end of every partition"}
    progress(f"consumed {stats.received} message(s) from {topic}{why.get(stats.reason, '')}")
    if stats.reason == "idle" and count is not None and stats.received < count:
        from kops.core.errors import WaitTimeout

        raise WaitTimeout(f"{stats.received} of {count} messages within {timeout:g} s of idleness")


# -- groups -----------------------------------------------------------------------------------------------

@click.group("group")
def group_group():
    """List and describe consumer groups; reset their offsets.

    \b
    Example: kops group describe billing --name dev
    """


@group_group.command("list")
@output_option
@target_options
@handle_errors
def group_list(output, session):
    """List consumer groups and their states.

    \b
    Example: kops group list --name dev
    """
    rows = data.list_groups(session())
    if output == "json":
        print_json(rows)
    elif not rows:
        err_console.print("no consumer groups", markup=False)
    else:
        _table(["GROUP", "STATE"], [(r["group"], r["state"]) for r in rows])


@group_group.command("describe")
@click.argument("group")
@output_option
@target_options
@handle_errors
def group_describe(group, output, session):
    """GROUP's members and, per partition, the committed offset, end offset and lag (a
    partition the group has no offset for: '-', its lag counted from its first offset).

    \b
    Example: kops group describe billing --output json --name dev
    """
    d = data.describe_group(session(), group)
    if output == "json":
        print_json(d)
        return
    out_console.print(f"group {d['group']} · {d['state']} · {len(d['members'])} member(s) · lag {d['lag']}",
                      markup=False)
    if d["members"]:
        _table(["MEMBER", "CLIENT", "HOST", "PARTITIONS"],
               [(m["member_id"], m["client_id"], m["host"], ",".join(m["partitions"]) or "-") for m in d["members"]])
    _table(["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"],
           [(r["topic"], r["partition"], r["committed"], r["end"], r["lag"]) for r in d["offsets"]])


@group_group.command("reset-offsets")
@click.argument("group")
@click.option("--topic", "topics", multiple=True, help="Every partition of this topic (repeatable; default: "
                                                        "the partitions the group has offsets for).")
@click.option("--to-earliest", "to", flag_value="earliest", help="The first offset still kept.")
@click.option("--to-latest", "to", flag_value="latest", help="The end (skip everything there now).")
@click.option("--to-offset", type=click.IntRange(min=0), help="This offset (within each partition's range).")
@click.option("--to-datetime", metavar="TIME", help="The first message at or after TIME (ms or ISO 8601).")
@click.option("--execute", is_flag=True, help="Apply it (default: show the plan, change nothing).")
@output_option
@target_options
@handle_errors
def group_reset(group, topics, to, to_offset, to_datetime, execute, output, session):
    """Move GROUP's committed offsets. Shows the plan unless --execute; refused while the
    group has active members.

    \b
    Example: kops group reset-offsets billing --topic orders --to-earliest --execute --name dev
    """
    given = [x for x in (to, to_offset is not None and "offset", to_datetime and "datetime") if x]
    if len(given) != 1:
        raise InputError("give exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime TIME")
    kind = given[0]
    value = to_offset if kind == "offset" else data.parse_time(to_datetime) if kind == "datetime" else None
    res = data.reset_offsets(session(), group, kind, value=value, topics=list(topics), execute=execute)
    if output == "json":
        print_json(res)
    else:
        _table(["TOPIC", "PARTITION", "CURRENT", "NEW", "LAG AFTER"],
               [(r["topic"], r["partition"], r["current"], r["new"], r["lag_after"]) for r in res["partitions"]])
    if execute:
        progress(f"group {group}: offsets of {len(res['partitions'])} partition(s) reset")
    else:
        busy = f"; the group has {res['members']} active member(s): stop them first" if res["members"] else ""
        progress(f"dry run: nothing was changed (--execute applies it){busy}")
