"""What the unit tests of spec rules share: a fixed cluster id and the refusal check."""

from __future__ import annotations

import pytest

from kops.model import inventory as speclib, topology
from kops.model.spec import SpecError

CID = "MkU3OEVBNTcwNTJENDM2Qk"


def refused(text: str, *fragments: str) -> str:
    """The inventory ``text`` is refused (spec or topology), and the message names every fragment."""
    with pytest.raises(SpecError) as ei:
        topology.build(speclib.loads(text, "t"), CID)
    msg = str(ei.value)
    for f in fragments:
        assert f in msg, msg
    return msg


def topo(text: str):
    """The topology of an inventory given as text."""
    return topology.build(speclib.loads(text, "t"), CID)


def props(text: str) -> dict[str, str]:
    """A rendered properties file as a dict (comments left out)."""
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
