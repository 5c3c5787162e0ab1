"""The words a plan gives for a changed config file: the keys, never a secret."""

from kops.bundle import diff


def test_keys_added_removed_and_changed():
    old = "a=1\nb=2\n# a comment\nc=3\n"
    new = "a=1\nb = 5\nd=4\n"
    assert diff.changed_keys(old, new) == ["b 2 -> 5", "-c", "+d=4"]


def test_secrets_are_never_shown():
    old = 'sasl.jaas.config=org.Scram required username="u" password="old";\nssl.keystore.password=aaa\n'
    new = 'sasl.jaas.config=org.Scram required username="u" password="new";\nssl.keystore.password=bbb\n'
    got = diff.changed_keys(old, new)
    assert got == ["sasl.jaas.config **** -> ****", "ssl.keystore.password **** -> ****"]
    assert "old" not in str(got) and "bbb" not in str(got)


def test_words_per_file():
    assert diff.words("/x/server.properties", "a=1\n", "a=2\n") == "server.properties (a 1 -> 2)"
    assert diff.words("/x/server.properties", None, "a=2\n") == "server.properties"   # not readable: the name
    assert diff.words("/x/log4j2.yaml", "x", "y") == "log4j2.yaml"
    assert diff.words("/x/zoo.cfg", "a=1\n#c\n", "a=1\n") == "zoo.cfg (comments or order only)"
    many = "".join(f"k{i}={i}\n" for i in range(10))
    assert diff.words("/x/s.properties", "", many).endswith(", and 4 more)")


def test_continued_lines_and_colons():
    assert diff.parse("a: 1\nb=x\\\n  y\n!bang\n") == {"a": "1", "b": "xy"}
