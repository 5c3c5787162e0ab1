"""The Docker engine connection: local socket, ``DOCKER_HOST`` (tcp:// or ssh://), or a context."""

from __future__ import annotations

import os

from kops.core.errors import EngineError


def client(timeout: int = 120):
    import docker  # late: unit tests of pure logic need no engine

    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
        return c
    except Exception as exc:  # docker raises several types for "no engine"
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise EngineError(
            f"no Docker engine answers at {where}: {exc.__class__.__name__}",
            hint="start Docker (on Debian as root: scripts/ensure-engine.sh installs and starts it), "
                 "or point DOCKER_HOST at a running engine",
        ) from exc
