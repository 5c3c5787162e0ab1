"""Shared pytest wiring: the --update-golden option and a Docker client for integration tests."""

from __future__ import annotations

import pytest

SETUP_HINT = "run `make test` (or scripts/setup.sh) to install and start a Docker engine"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ from the current templates instead of comparing")


@pytest.fixture(scope="session")
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def docker_client():
    """A pinged Docker SDK client; fails (never skips) when no engine answers."""
    import docker

    problem = None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # DockerException, requests errors, missing socket...
        problem = exc
    if problem is not None:  # failed outside the except: no chained traceback, just the hint
        pytest.fail(f"no Docker engine answers ({problem}); {SETUP_HINT}", pytrace=False)
    yield client
    client.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report as ``item.rep_setup`` / ``rep_call`` (for clean-up fixtures)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
