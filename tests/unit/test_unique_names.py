"""pytest imports test files by their base name (no packages under tests/): two files of one
name in two tiers make the second one an 'import file mismatch' error in a fresh checkout."""

from collections import Counter
from pathlib import Path


def test_every_test_file_name_is_unique_across_tiers():
    tests = Path(__file__).resolve().parents[1]
    names = Counter(p.name for p in tests.rglob("test_*.py") if "__pycache__" not in p.parts)
    assert not [n for n, c in names.items() if c > 1], sorted(n for n, c in names.items() if c > 1)
