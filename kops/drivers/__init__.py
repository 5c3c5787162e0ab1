"""Drivers: one per kind of target, same interface (see base.py)."""

from __future__ import annotations


def for_spec(spec, log):
    if spec.driver == "ssh":
        from .ssh import SSHDriver

        return SSHDriver(log)
    from .docker import DockerDriver

    return DockerDriver(log)


def docker_for_name(log):
    from .docker import DockerDriver

    return DockerDriver(log)
