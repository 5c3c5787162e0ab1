"""Secrets out of text that leaves kops (the terminal, a debug bundle): passwords in the
forms Kafka's files and tools print them, PEM private keys, and any value kops knows to be
a secret of the cluster (its generated passwords and keys), wherever it appears."""

from __future__ import annotations

import re

MASK = "****"
# password=VALUE, password="VALUE" (JAAS), sasl.password=VALUE, "password": "VALUE" (JSON)
_PASSWORD = re.compile(r"""(?i)(password\s*=\s*["']?)[^\s"',\];]+""")
_JSON_PASSWORD = re.compile(r"""(?i)("[\w.-]*password"\s*:\s*")[^"]*""")
_PEM_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S)


def redact(text: str, known: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with passwords, private keys and every string of ``known`` masked."""
    text = _PEM_KEY.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY-----{MASK}-----END {m.group(1)}PRIVATE KEY-----",
                        text)
    for value in sorted((k for k in known if len(k) >= 8), key=len, reverse=True):   # longest first
        text = text.replace(value, MASK)
    text = _JSON_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
    return _PASSWORD.sub(lambda m: m.group(1) + MASK, text)
