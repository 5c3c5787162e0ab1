"""What changed in a node's rendered config, in words: the keys of a properties file
(server.properties, zoo.cfg, connect-distributed.properties ...) added, removed or given
another value, secrets shown as ``****``. `up --dry-run` and the plan's reasons use it."""

from __future__ import annotations

import re

# keys whose values are never shown: passwords, JAAS lines, keys
_SECRET_KEY = re.compile(r"(?i)password|jaas|secret|credential|\.key$|token")
PROPERTIES = (".properties", ".cfg")
SHOWN = 6        # keys named per file before "and N more"


def parse(text: str) -> dict[str, str]:
    """key -> value of a Java properties file as kops renders them (``key=value`` lines,
    comments and blank lines skipped; a line continued with ``\\`` joined)."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        line = line.strip()
        while line.endswith("\\"):
            line = line[:-1] + next(lines, "").strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"((?:[^\\=:\s]|\\.)+)\s*[=:\s]\s*(.*)", line)
        key, value = (m.group(1), m.group(2)) if m else (line, "")
        out[key] = value
    return out


def changed_keys(old: str, new: str, *, values: bool = True) -> list[str]:
    """``key old -> new``, ``+key=value``, ``-key`` for every key that differs (without
    ``values``: ``key changed``, ``+key``, for a file that holds credentials)."""
    a, b = parse(old), parse(new)

    def shown(key: str, value: str) -> str:
        return "****" if _SECRET_KEY.search(key) else value

    out = []
    for k in sorted(set(a) | set(b)):
        if k not in b:
            out.append(f"-{k}")
        elif k not in a:
            out.append(f"+{k}={shown(k, b[k])}" if values else f"+{k}")
        elif a[k] != b[k]:
            out.append(f"{k} {shown(k, a[k])} -> {shown(k, b[k])}" if values else f"{k} changed")
    return out


def words(path: str, old: str | None, new: str, *, values: bool = True) -> str:
    """One file's change for a plan line: ``server.properties (log.retention.hours 168 -> 24)``."""
    name = path.rsplit("/", 1)[-1]
    if old is None or not path.endswith(PROPERTIES):
        return name
    keys = changed_keys(old, new, values=values)
    if not keys:
        return f"{name} (comments or order only)"
    more = f", and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return f"{name} ({', '.join(keys[:SHOWN])}{more})"
