"""Load a bot directory: read every flow file, merge them, validate schema then graph.

All problems of a load are collected and reported together (``FlowError.issues``), each as
``path:line:col: message`` in plain words.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from voicebot.flows.errors import FlowError, FlowIssue, Position
from voicebot.flows.schema import (
    SECTIONS,
    STEP_KEYS,
    ActionDef,
    BotDefinition,
    BotSettings,
    ConversationTest,
    Flow,
    Intent,
    Queue,
    TestFile,
)
from voicebot.flows.yaml_source import PathKey, SourceMap, read_yaml

TESTS_DIR = "tests"
M = TypeVar("M", bound=BaseModel)
_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "intents": Intent,
    "queues": Queue,
    "actions": ActionDef,
    "flows": Flow,
}


@dataclass
class LoadedBot:
    """A validated bot: its definition, where each value was written, and its tests."""

    root: Path
    definition: BotDefinition
    source_map: SourceMap
    files: list[Path]
    tests: list[tuple[ConversationTest, Position | None]] = field(default_factory=list)
    warnings: list[FlowIssue] = field(default_factory=list)

    @property
    def knowledge_dir(self) -> Path:
        return self.root / "knowledge"


def flow_files(flows_dir: Path) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` below ``flows_dir`` except conversation tests, sorted."""
    found = [*flows_dir.rglob("*.yaml"), *flows_dir.rglob("*.yml")]
    return sorted(p for p in found if TESTS_DIR not in p.relative_to(flows_dir).parts[:-1])


def test_files(flows_dir: Path) -> list[Path]:
    tests_dir = flows_dir / TESTS_DIR
    if not tests_dir.is_dir():
        return []
    return sorted([*tests_dir.rglob("*.yaml"), *tests_dir.rglob("*.yml")])


def load_bot(
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    max_bytes: int = 1024 * 1024,
    with_tests: bool = False,
) -> LoadedBot:
    """Load and validate the bot in ``root`` (a directory holding ``flows/``).

    Raises :class:`FlowError` with every problem found; warnings ride on the result.
    """
    from voicebot.flows.checks import check_graph  # the graph checks need the typed model

    flows_dir = root / "flows"
    if not flows_dir.is_dir():
        raise FlowError([FlowIssue(None, f"no flows/ directory in {root}")])
    files = flow_files(flows_dir)
    if not files:
        raise FlowError([FlowIssue(None, f"no flow files (*.yaml) in {flows_dir}")])

    issues: list[FlowIssue] = []
    merged: dict[str, dict[str, Any]] = {}
    source_map = SourceMap()
    owner: dict[PathKey, Position] = {}
    for path in files:
        shown = _display(path, root)
        data, smap, file_issues = read_yaml(path, display=shown, max_bytes=max_bytes, env=env)
        issues.extend(file_issues)
        if data is None:
            continue
        if not isinstance(data, dict):
            issues.append(FlowIssue(smap.locate(()), "a flow file must be a mapping of sections"))
            continue
        for section, content in data.items():
            if section not in SECTIONS:
                issues.append(
                    FlowIssue(smap.key((section,)), _unknown_key(section, SECTIONS, "section"))
                )
                continue
            if content is None:
                continue
            if not isinstance(content, dict):
                issues.append(
                    FlowIssue(smap.locate((section,)), f"'{section}' must be a mapping of names")
                )
                continue
            target = merged.setdefault(section, {})
            for name, value in content.items():
                key_path: PathKey = (section, name)
                here = smap.key(key_path)
                if name in target:
                    first = owner.get(key_path)
                    kind = "bot setting" if section == "bot" else section.rstrip("s")
                    issues.append(
                        FlowIssue(here, f"{kind} '{name}' is defined twice (also at {first})")
                    )
                    continue
                target[name] = value
                if here is not None:
                    owner[key_path] = here
                for p, pos in smap.positions.items():
                    if p[:2] == key_path:
                        source_map.positions[p] = pos
                for p, pos in smap.key_positions.items():
                    if p[:2] == key_path:
                        source_map.key_positions[p] = pos
            if (section,) not in source_map.positions:
                source_map.positions[(section,)] = smap.locate((section,)) or Position(shown, 1, 1)

    if "bot" not in merged:
        if not issues:  # a file that failed to parse may well hold the bot section
            issues.append(FlowIssue(None, "no 'bot:' section in any flow file (it needs a name)"))
        raise FlowError(issues)

    # Each intent, queue, action and flow is validated on its own, so one broken flow does not
    # hide the mistakes in the others; names that failed still count as defined for the graph
    # checks, which would otherwise report every use of them again.
    valid: dict[str, Any] = {"bot": merged["bot"]}
    broken: set[str] = set()
    for section, model in _SECTION_MODELS.items():
        valid[section] = {}
        for name, value in merged.get(section, {}).items():
            item = _validate(model, value, source_map, issues, prefix=(section, name))
            if item is None:
                broken.add(name)
            else:
                valid[section][name] = item
    bot_settings = _validate(BotSettings, merged["bot"], source_map, issues, prefix=("bot",))
    if bot_settings is None:
        raise FlowError(issues)
    valid["bot"] = bot_settings
    definition = BotDefinition.model_construct(**valid)
    loaded = LoadedBot(root=root, definition=definition, source_map=source_map, files=files)
    issues.extend(check_graph(loaded, broken))
    if with_tests:
        issues.extend(_load_tests(loaded, flows_dir, env=env, max_bytes=max_bytes))
    errors = [i for i in issues if not i.warning]
    loaded.warnings = [i for i in issues if i.warning]
    if errors:
        raise FlowError(issues)
    return loaded


def _load_tests(
    loaded: LoadedBot, flows_dir: Path, *, env: Mapping[str, str] | None, max_bytes: int
) -> list[FlowIssue]:
    from voicebot.flows.checks import check_tests

    issues: list[FlowIssue] = []
    for path in test_files(flows_dir):
        shown = _display(path, loaded.root)
        data, smap, file_issues = read_yaml(path, display=shown, max_bytes=max_bytes, env=env)
        issues.extend(file_issues)
        if data is None:
            continue
        parsed = _validate(TestFile, data, smap, issues)
        if parsed is None:
            continue
        for i, test in enumerate(parsed.tests):
            position = smap.locate(("tests", i))
            loaded.tests.append((test, position))
            issues.extend(check_tests(loaded, test, smap, ("tests", i)))
    return issues


def _display(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


def _validate(
    model: type[M],
    data: Any,
    source_map: SourceMap,
    issues: list[FlowIssue],
    prefix: PathKey = (),
) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues.extend(_explain(exc, source_map, model, prefix))
        return None


# --- pydantic errors in plain words ---------------------------------------------------------


def _explain(
    exc: ValidationError, source_map: SourceMap, root: type[BaseModel], prefix: PathKey = ()
) -> list[FlowIssue]:
    errors = _drop_wrong_branches(exc.errors(include_url=False))
    result: list[FlowIssue] = []
    seen: set[tuple[str, str]] = set()
    for error in errors:
        model_loc = tuple(error["loc"])
        loc = (*prefix, *model_loc)
        doc_path = _document_path(loc, source_map)
        if error["type"] == "extra_forbidden":
            key = str(loc[-1])
            position = source_map.key((*doc_path[:-1], key)) if doc_path else None
            position = position or source_map.locate(loc)
            message = _unknown_key(key, _allowed_keys(root, model_loc[:-1]), "key")
        elif error["type"] == "missing":
            # The missing key belongs to the mapping that lacks it; when that mapping is a step,
            # the document path ends at the step key's value, so step back to the step itself.
            holder = _document_path(loc[:-1], source_map)
            if holder and holder[-1] in STEP_KEYS:
                holder = holder[:-1]
            position = source_map.positions.get(holder) or source_map.locate(loc)
            message = _plain(error, doc_path)
        else:
            position = source_map.locate(loc)
            message = _plain(error, doc_path)
        where = str(position)
        if (where, message) in seen:
            continue
        seen.add((where, message))
        result.append(FlowIssue(position, message))
    return result


def _document_path(loc: tuple[Any, ...], source_map: SourceMap) -> PathKey:
    return source_map.walk(loc)


def _drop_wrong_branches(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """For ``str | step`` values, keep only the errors of the branch the input was meant for."""
    kept = []
    for error in errors:
        loc = error["loc"]
        if (
            loc
            and loc[-1] in ("str", "int", "float", "bool")
            and isinstance(error.get("input"), dict | list)
        ):
            prefix = loc[:-1]
            if any(e is not error and tuple(e["loc"][: len(prefix)]) == prefix for e in errors):
                continue
        if (
            error["type"] in ("dict_type", "model_type", "list_type", "model_attributes_type")
            and isinstance(error.get("input"), str)
            and any(
                e is not error and e["type"] == "string_type" and e["loc"][:-1] == loc[:-1]
                for e in errors
            )
        ):
            continue
        kept.append(error)
    return kept


def _allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The keys that the mapping at ``loc`` accepts, for a 'did you mean' suggestion."""
    current: Any = root
    for element in loc:
        current = _descend(current, element)
        if current is None:
            return ()
    if isinstance(current, type) and issubclass(current, BaseModel):
        return tuple(f.alias or name for name, f in current.model_fields.items())
    return ()


def _union_members(tp: Any, tags: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """The leaves of a (possibly nested, annotated) union, with the tags that select them."""
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        return _union_members(base, tags + tuple(m.tag for m in meta if isinstance(m, Tag)))
    if get_origin(tp) in (Union, UnionType):
        return [leaf for arg in get_args(tp) for leaf in _union_members(arg, tags)]
    return [(tags, tp)]


def _descend(current: Any, element: Any) -> Any:
    """One step down a pydantic type along an error location (None when lost)."""
    while get_origin(current) is Annotated:
        current = get_args(current)[0]
    if isinstance(current, type) and issubclass(current, BaseModel):
        for name, info in current.model_fields.items():
            if element in (name, info.alias):
                return info.annotation
        return None
    origin = get_origin(current)
    args = get_args(current)
    if origin is list and isinstance(element, int):
        return args[0]
    if origin is dict and isinstance(element, str):
        return args[1]
    if origin in (Union, UnionType):
        for tags, member in _union_members(current):
            if element in tags or element == getattr(member, "__name__", None):
                return member
        if element in ("str", "int", "float", "bool") or str(element).startswith("function-"):
            return current
    return None


def _unknown_key(key: str, allowed: tuple[str, ...], what: str) -> str:
    message = f"unknown {what} '{key}'"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    elif allowed and len(allowed) <= 20:
        message += f"; expected one of: {', '.join(allowed)}"
    return message


_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "datetime_type": "a date and time like 2026-11-23T10:00",
    "datetime_parsing": "a date and time like 2026-11-23T10:00",
    "datetime_from_date_parsing": "a date and time like 2026-11-23T10:00",
    "date_type": "a date like 2026-12-25",
    "date_parsing": "a date like 2026-12-25",
    "date_from_datetime_parsing": "a date like 2026-12-25",
}


def _plain(error: ErrorDetails, doc_path: PathKey) -> str:
    kind = error["type"]
    loc = error["loc"]
    field_name = str(doc_path[-1]) if doc_path and isinstance(doc_path[-1], str) else None
    label = f"'{field_name}'" if field_name else "this value"
    if kind == "missing":
        missing = str(loc[-1])
        return f"missing required key '{missing}'"
    if kind in _TYPE_WORDS:
        given = error.get("input")
        shown = f" (got {_short(given)})" if given is not None else ""
        return f"{label} should be {_TYPE_WORDS[kind]}{shown}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{label} has an unknown value {_short(error.get('input'))}; expected {expected}"
    if kind in ("too_short", "too_long"):
        return f"{label}: {error['msg'].lower()}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{label}: {error['msg'].lower()}"
    if kind == "value_error":
        return f"{label}: {error['msg']}"
    return str(error["msg"])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
