"""What the integration tests share: removing a test cluster's leftovers by label, and a
fixture that does it before and after a test for every cluster name it registers."""

from __future__ import annotations

import pytest

from cleanup import remove_labelled


def _own(docker_client):
    names: list[str] = []

    def use(name: str) -> str:
        remove_labelled(docker_client, name)
        names.append(name)
        return name

    yield use
    for name in names:
        remove_labelled(docker_client, name)


@pytest.fixture
def own_clusters(docker_client):
    """``own_clusters(name)`` registers a cluster name of this test: its leftovers are
    removed now and again after the test."""
    yield from _own(docker_client)


@pytest.fixture(scope="module")
def own_clusters_module(docker_client):
    """The same for a cluster that a whole module shares."""
    yield from _own(docker_client)
