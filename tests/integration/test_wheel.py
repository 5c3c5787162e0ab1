"""The wheel ships the templates (and inventories) and installs into a clean venv."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("cwd", "/tmp")
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env() -> dict:
    # nothing from the dev venv or the source tree may leak into the installed kops
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([VENV_BIN / "pip", "wheel", "--no-deps", "-q", "-w", out, REPO], timeout=300)
    wheels = list(out.glob("kops-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    root = tmp_path_factory.mktemp("venv") / "v"
    _run(["python3", "-m", "venv", root], env=_clean_env(), timeout=120)
    _run([root / "bin" / "pip", "install", "-q", wheel], env=_clean_env(), timeout=540)
    return root


def test_wheel_contains_templates(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "kops/_data/templates/log/log4j.properties.j2" in names
    assert "kops/_data/templates/log/log4j2.yaml.j2" in names
    # every template file of the source tree is shipped
    for rel in _files_under(REPO / "templates"):
        assert f"kops/_data/templates/{rel}" in names, rel
    # the code itself and the entry point
    assert "kops/artifacts/dist.py" in names
    assert "kops/cli/main.py" in names
    entry = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert entry
    with zipfile.ZipFile(wheel) as zf:
        assert "kops = kops.cli.main:main" in zf.read(entry[0]).decode()


def test_wheel_contains_inventories(wheel):
    shipped = _files_under(REPO / "inventories")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    in_wheel = sorted(n[len("kops/_data/inventories/"):] for n in names
                      if n.startswith("kops/_data/inventories/") and not n.endswith("/"))
    # empty today is fine; whatever the source tree holds must be in the wheel, nothing else
    assert in_wheel == shipped


def test_installed_cli_runs(venv):
    kops = venv / "bin" / "kops"
    assert kops.is_file()
    version = _run([kops, "--version"], env=_clean_env())
    assert "kops" in version.stdout
    assert "0.1.0" in version.stdout
    helptext = _run([kops, "--help"], env=_clean_env())
    assert "kops" in helptext.stdout
    assert "dist" in helptext.stdout
    sub = _run([kops, "dist", "fetch", "--help"], env=_clean_env())
    assert "--apache-url" in sub.stdout


def test_installed_templates_come_from_the_wheel(venv):
    py = venv / "bin" / "python"
    # inventories ship only once the source tree has some (an empty folder is not packed)
    has_inventories = bool(_files_under(REPO / "inventories"))
    code = "import kops; from kops.core import paths; print(kops.__file__); print(paths.templates_dir())"
    if has_inventories:
        code += "; print(paths.inventories_dir())"
    proc = _run([py, "-c", code], env=_clean_env())
    found = [Path(line) for line in proc.stdout.strip().splitlines()]
    assert len(found) == (3 if has_inventories else 2), proc.stdout
    module, templates = found[0], found[1]
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     env=_clean_env()).stdout.strip())
    assert site.resolve().is_relative_to(venv.resolve())
    for p in found:
        assert p.resolve().is_relative_to(site.resolve()), p
        assert not p.resolve().is_relative_to(REPO.resolve()), p
    assert module == site / "kops" / "__init__.py"
    assert templates == site / "kops" / "_data" / "templates"
    assert (templates / "log" / "log4j.properties.j2").is_file()
    if has_inventories:
        assert found[2] == site / "kops" / "_data" / "inventories"


def test_installed_renders_default_log_config(venv):
    """The installed package can render a template (jinja finds the shipped files)."""
    py = venv / "bin" / "python"
    proc = _run([py, "-c", "from kops.bundle.render import default_log_config; "
                 "n, t = default_log_config('3.9.2'); print(n); print(len(t))"], env=_clean_env())
    name, size = proc.stdout.strip().splitlines()
    assert name == "log4j.properties"
    assert int(size) > 0
