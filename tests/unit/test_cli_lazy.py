"""`kops --help` imports no command: the list is kept in kops.cli.main.COMMANDS, whose short
help must stay the commands' own (the first sentence of each docstring)."""

import subprocess
import sys

import pytest

from kops.cli.main import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_short_help_is_the_commands_own(name):
    cmd = cli.get_command(None, name)
    assert cmd is not None and cmd.name == name
    assert COMMANDS[name][1] == cmd.get_short_help_str(limit=1000), (
        f"kops.cli.main.COMMANDS[{name!r}] no longer matches the command's docstring")


def test_help_imports_no_command_and_lists_every_one():
    code = ("import sys; from click.testing import CliRunner; from kops.cli.main import cli; "
            "r = CliRunner().invoke(cli, ['--help']); print(r.output); "
            "print('LOADED', sorted(m for m in sys.modules if m.startswith('kops.') and m not in "
            "('kops.cli', 'kops.cli.main')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.rstrip().endswith("LOADED []"), out.splitlines()[-1]
    for name in COMMANDS:
        assert f"  {name} " in out, name


def test_an_unknown_command_is_a_usage_error():
    from click.testing import CliRunner

    r = CliRunner().invoke(cli, ["upp"])
    assert r.exit_code == 2 and "No such command 'upp'" in r.output
