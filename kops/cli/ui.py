"""`kops ui`: the local web console (kops.ui), served until Ctrl-C."""

from __future__ import annotations

import click

from kops.cli.cluster import Target, env_cluster
from kops.cli.common import handle_errors, progress
from kops.cli.config import inventory_options
from kops.core.errors import InputError, KopsError, NotFoundError


def _engine_names() -> list[str]:
    from kops.providers.docker import DockerProvider

    return sorted(DockerProvider("", lambda m: None).clusters())


@click.command("ui")
@inventory_options
@click.option("--name", help="Open on this cluster (instead of an inventory); the others stay a click away.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port to serve on (0: a free one, picked now).")
@click.option("--bind", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Address to serve on. Anything but loopback exposes the console (token-protected) to the "
                   "network: give it deliberately.")
@click.option("--open", "open_", is_flag=True, help="Open the console in the default web browser.")
@handle_errors
def ui(spec_source, name, port, bind, open_):
    """A local web console for the clusters kops manages: status, topics, consumer groups and messages.

    Served on 127.0.0.1 (a free port unless --port) until Ctrl-C. Its URL, printed on
    stderr, carries a random token: open that URL (the token becomes a cookie); a request
    without it is refused. A secure cluster is read with kops's own admin credentials, on
    the server: they never reach a page.

    \b
    Example: kops ui --name dev --open
    """
    import socket

    from kops.ui.app import Guard, create_app
    from kops.ui.backend import KopsBackend

    if not (name or spec_source[0] or spec_source[1]):
        name = env_cluster()   # $KOPS_CLUSTER, as --name's default everywhere
    explicit = bool(name or spec_source[0] or spec_source[1])
    first = Target(spec_source, name) if explicit else None
    focus = [first.name] if first is not None and first.name else []
    made = {first.name: first} if first is not None and first.name else {}

    def names() -> list[str]:
        try:
            return _engine_names()
        except KopsError:
            return []   # no engine: only the inventory given

    def target(cluster: str):
        if cluster in made:
            return made[cluster]
        return Target((None, None, spec_source[2]), cluster)

    on_engine = names()
    if name and name not in on_engine:
        raise NotFoundError(f"cluster {name} is not on the Docker engine", hint="kops ls lists the clusters there are")
    backend = KopsBackend(names, target, focus)
    guard = Guard()

    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        raise InputError(f"cannot serve on {bind}:{port}: {getattr(exc, 'strerror', None) or exc}",
                         hint="--port 0 picks a free port; --bind takes an address of this machine") from None
    sock.listen(128)
    sock.set_inheritable(True)
    real_port = sock.getsockname()[1]
    host = f"[{bind}]" if family == socket.AF_INET6 else bind
    if bind in ("0.0.0.0", "::"):
        host = "127.0.0.1"
        progress(f"serving on every address of this machine ({bind}), port {real_port}: anyone who can reach "
                 "it and has the token can change the clusters")
    elif not bind.startswith("127.") and bind not in ("::1", "localhost"):
        progress(f"serving on {bind}: reachable from the network (token-protected)")
    url = f"http://{host}:{real_port}/?token={guard.token}"
    shown = ", ".join(focus or on_engine) or "none yet"
    progress(f"kops ui: clusters {shown}; Ctrl-C stops it")
    click.echo(f"kops ui: {url}", err=True)

    if open_:
        import threading
        import webbrowser

        threading.Timer(0.5, lambda: webbrowser.open(url)).start()
    try:
        _serve(create_app(backend, guard), sock)
    except KeyboardInterrupt:   # uvicorn shut down first, then passed Ctrl-C on: the normal end
        pass
    progress("kops ui stopped")


def _serve(app, sock) -> None:
    """uvicorn on the socket bound above, until Ctrl-C (open connections closed, no thread
    left)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3,
                            lifespan="off", server_header=False)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
