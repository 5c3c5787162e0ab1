"""What the unit tests of spec rules share: a fixed cluster id and the refusal check."""

from __future__ import annotations

import pytest

from kops import inventory as speclib, topology
from kops.spec import SpecError

CID = "MkU3OEVBNTcwNTJENDM2Qk"


def refused(text: str, *fragments: str) -> str:
    """The inventory ``text`` is refused (spec or topology), and the message names every fragment."""
    with pytest.raises(SpecError) as ei:
        topology.build(speclib.loads(text, "t"), CID)
    msg = str(ei.value)
    for f in fragments:
        assert f in msg, msg
    return msg
