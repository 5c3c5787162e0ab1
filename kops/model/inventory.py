"""Reading an inventory: strict YAML, then the model, then the topology's checks.

Every problem is reported at once (field path, the bad value, what is allowed) as one
:class:`~kops.spec.SpecError` (exit code 2), before anything is created anywhere. The YAML
reader refuses what a cluster spec never needs and what makes parsers misbehave:
duplicate keys, alias bombs, deep nesting, non-UTF-8 text, empty, huge or non-regular
files.
"""

from __future__ import annotations

import copy
import difflib
import re
import stat
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kops.core import paths
from kops.core.errors import InputError
from kops.model.spec import DEFAULT_PRESET, NAME_RE, RULES_ERROR, ClusterSpec, HostSpec, NodeOverride, SpecError, TopicSpec, _short, rules
from kops.model import configdef, topology

MAX_BYTES = 1 << 20        # an inventory is a few KiB; 1 MiB is plenty
MAX_ALIASES = 64           # YAML aliases (*x) in one document
MAX_DEPTH = 24             # nesting of mappings and lists


# -- presets ----------------------------------------------------------------------------

def preset_names() -> list[str]:
    return sorted(p.stem for p in paths.inventories_dir().glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = paths.inventories_dir() / f"{name}.yaml"
    if not NAME_RE.fullmatch(name or "") or not path.is_file():
        close = difflib.get_close_matches(name, preset_names(), n=1)
        raise InputError(f"no preset named {_short(name)}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                         hint="presets: " + ", ".join(preset_names()))
    return path


# -- loading ----------------------------------------------------------------------------

def load(path: str | Path | None = None, preset: str | None = None) -> ClusterSpec:
    """Load an inventory file or a preset (the default preset when both are None)."""
    if path is not None and preset:
        raise InputError("give either -i FILE or --preset NAME, not both",
                         hint="-i takes your inventory file; --preset one of kops's (kops init --list)")
    if path is None:
        path = preset_path(preset or DEFAULT_PRESET)
    return loads(read_text(Path(path)), str(path))


def read_text(path: Path) -> str:
    """The inventory's text; refuses what is not a small regular UTF-8 file (exit 2)."""
    hint = "check the path, or use --preset NAME"
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(f"cannot read inventory {path}: {exc.strerror}", hint=hint) from exc
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise InputError(f"cannot read inventory {path}: it is {kind}", hint=hint)
    if st.st_size > MAX_BYTES:
        raise InputError(f"inventory {path} is {st.st_size} bytes; an inventory is at most {MAX_BYTES} bytes",
                         hint="is this the right file?")
    try:
        data = path.read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise InputError(f"cannot read inventory {path}: {exc.strerror}", hint=hint) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), [f"not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                                    "an inventory is a YAML text file"]) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and limits aliases and nesting."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.constructor.ConstructorError(
                    None, None, f"more than {MAX_ALIASES} aliases (*name): an inventory needs few or none",
                    event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.constructor.ConstructorError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                        self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                # `<<: *base` merges a mapping (SafeLoader flattens it below): a key, not a value
                key = "<<" if key_node.tag == "tag:yaml.org,2002:merge" else \
                    self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        None, None, "a mapping key must be a plain value", key_node.start_mark) from None
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        f"key {_short(key)} first given on line {first.line + 1}", first,
                        f"given again on line {key_node.start_mark.line + 1} (the second would silently win)",
                        key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _count(data: Any, limit: int = 20000) -> int:
    """Values in ``data`` after alias expansion; stops counting at ``limit``."""
    n, stack = 0, [data]
    while stack and n <= limit:
        item = stack.pop()
        n += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return n


def parse_yaml(text: str, source: str) -> dict:
    if len(text) > MAX_BYTES:
        raise SpecError(source, [f"{len(text)} characters: an inventory is at most {MAX_BYTES}"])
    if "\0" in text:
        raise SpecError(source, ["contains NUL characters: an inventory is a YAML text file"])
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        ctx = getattr(exc, "context", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(source, [f"not valid YAML{where}: " + (f"{ctx}, {problem}" if ctx else problem)]) from None
    except RecursionError:
        raise SpecError(source, [f"not valid YAML: nested too deeply (at most {MAX_DEPTH} levels)"]) from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        # a value the YAML types refuse (!!int abc, a date that is not one, a 5000-digit number)
        raise SpecError(source, [f"not valid YAML: a value cannot be read: {_short(str(exc), 120)}"]) from None
    if data is None:
        raise SpecError(source, ["the inventory is empty: write at least `name: mycluster`, or start from "
                                 "a preset with `kops init --preset NAME`"])
    if not isinstance(data, dict):
        raise SpecError(source, [f"the top level must be a mapping of keys, not {type(data).__name__}"])
    if _count(data) > 20000:
        raise SpecError(source, ["too many values (over 20000 after expanding aliases): is this an inventory?"])
    return data


def loads(text: str, source: str = "<inventory>") -> ClusterSpec:
    """Parse, validate and check an inventory's text; every problem at once."""
    data = parse_yaml(text, source)
    return validate(data, source)


def validate(data: dict, source: str = "<inventory>") -> ClusterSpec:
    """Model rules, whole-spec rules and topology checks of an already parsed inventory."""

    problems: list[str] = []
    counts_ok = True
    try:
        spec = ClusterSpec.model_validate(data, context={"skip_rules": True})
    except ValidationError as exc:
        problems += [p for e in exc.errors() for p in _describe(e, data)]
        spec, counts_ok = _without_broken_keys(data, exc)
    except RecursionError:
        raise SpecError(source, ["nested too deeply"]) from None
    if spec is not None:
        broken = {p.split(":", 1)[0].split(".", 1)[0] for p in problems}
        # a section whose entries were dropped for being broken is not "missing" as well
        problems += [p for p in rules(spec) if not (p.split(":", 1)[0] in broken and "needs at least" in p)]
        if counts_ok and not problems:
            problems += topology.problems(spec)
        elif counts_ok:
            # topology checks on a spec whose whole-spec rules failed may count wrong; run the
            # ones that still make sense (ids and ports need a consistent set of nodes)
            problems += [p for p in topology.problems(spec) if p not in problems]
    if problems:
        if spec is not None:
            problems += _definition_problems(spec, problems)
        raise SpecError(source, _dedupe(problems))
    return spec


def _field(problem: str) -> str:
    """The field path a problem names (its text before the first ': ')."""
    return problem.split(": ", 1)[0]


def _definition_problems(spec: ClusterSpec, found: list[str]) -> list[str]:
    """An inventory refused already: its config keys and values against the version's own
    definitions too (when read before: the cache only, nothing is run), so that a typo
    and a bad value show in the same run as the model's problems. `up` checks them with
    the definitions in any case (kops.lifecycle.check_config); one problem per field."""
    if any(_field(p) == "kafka.version" and " is a number; " not in p for p in found):
        return []   # the definitions of which version? (a number's guess, 4.4 -> 4.4.0, is taken)
    defs = configdef.cached(spec.kafka.version)
    if not defs:
        return []
    named = {_field(p) for p in found}
    return [p for p in configdef.problems(spec, defs) if _field(p) not in named]


def _dedupe(items: list[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _version_guess(value) -> str:
    """X.Y.Z from a version YAML read as a number (4.4 -> 4.4.0, 4 -> 4.0.0)."""
    parts = (repr(value) if isinstance(value, float) else str(value)).split(".")
    return ".".join((parts + ["0", "0"])[:3])


def _without_broken_keys(data: dict, exc: ValidationError) -> tuple[ClusterSpec | None, bool]:
    """The inventory minus its broken keys, so the whole-spec rules still run and every
    problem shows at once. (None, False) when a node count is broken: rules would count wrong."""
    trimmed = copy.deepcopy(data)
    for _ in range(3):
        errors = exc.errors()
        if any(e["loc"] and e["loc"][-1] == "nodes" and e["type"] != "extra_forbidden" for e in errors):
            return None, False
        for e in errors:
            loc = [p for p in e["loc"] if p != "[key]"]
            parent = trimmed
            try:
                for part in loc[:-1]:
                    parent = parent[part]
                if isinstance(parent, dict) and loc[-1] == "version" and e["type"] == "string_type" \
                        and isinstance(parent.get("version"), (int, float)) \
                        and not isinstance(parent.get("version"), bool):
                    # 4.4 read as a number: the rules run with 4.4.0 (mode, ZooKeeper), not the default
                    parent["version"] = _version_guess(parent["version"])
                elif isinstance(parent, dict):
                    parent.pop(loc[-1], None)
                else:
                    return None, False
            except (KeyError, IndexError, TypeError):
                return None, False
        try:
            return ClusterSpec.model_validate(trimmed, context={"skip_rules": True}), True
        except ValidationError as again:
            exc = again
    return None, False


def _allowed_keys(loc: tuple) -> list[str]:
    model: Any = ClusterSpec
    for part in loc[:-1]:
        if model is None:
            return []
        field = model.model_fields.get(part) if isinstance(part, str) and hasattr(model, "model_fields") else None
        if field is None:
            # inside a dict[str, Model]: the key is a free name, keep the model
            if isinstance(part, str) and model in (HostSpec, NodeOverride, TopicSpec):
                continue
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None and hasattr(model, "model_fields") else []


def _model_of(ann) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        m = _model_of(arg)
        if m is not None:
            return m
    return None


def _cut(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(err: dict, data: dict) -> list[str]:
    loc = tuple(p for p in err["loc"] if p != "[key]")
    # a key with a newline or other control character is shown quoted, on one line
    where = _cut(".".join(_cut(str(p) if str(p).isprintable() else repr(str(p)), 60) for p in loc)
                 or "(top level)")
    kind = err["type"]
    if kind == RULES_ERROR:
        return list(err["ctx"]["problems"])
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {'.'.join(str(p) for p in loc[:-1] + (close[0],))}?)" if close else ""
        known = f"; known keys: {', '.join(allowed)}" if allowed else ""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            # not the shape of a key: a file that is no inventory (its lines may be secrets): not echoed
            parent = ".".join(str(p) for p in loc[:-1])
            return [f"{parent + ': ' if parent else ''}a key that is not a key name (not shown: is this an inventory?)"
                    f"{known}"]
        return [f"{_cut(where)}: unknown key{hint}{known}"]
    value = err.get("input")
    shown = _short(value) if not isinstance(value, dict) else "a mapping"
    msg = err["msg"]
    if kind == "missing":
        return [f"{where}: required and missing"]
    if kind == "value_error":
        return [f"{where}: {msg.removeprefix('Value error, ')}"]
    if kind == "string_type" and loc and loc[-1] == "version" and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        return [f"{where}: {value} is a number; write the full version in quotes, e.g. '{_version_guess(value)}'"]
    if kind == "literal_error":
        return [f"{where}: {shown} is not allowed: {msg.replace('Input should be', 'use')}"]
    return [f"{where}: {shown} is not valid: {msg}"]
