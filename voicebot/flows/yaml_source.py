"""Safe YAML reading that remembers where every value was written.

Flow files are written by people, so errors must point at a line and column. PyYAML's composer
already knows each node's position; we keep it in a map from the value's path (the same tuple
that pydantic reports in an error's ``loc``) to its :class:`Position`.

Safety: only the safe loader's plain types are built, explicit tags (``!!python/object``,
``!include``) and anchors/aliases are refused (aliases are how "billion laughs" files blow up
memory), and files over the size limit are not read at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, NodeEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from voicebot.flows.errors import FlowIssue, Position

PathKey = tuple[str | int, ...]

# ``${NAME}`` is replaced from the environment, ``${NAME:-default}`` falls back to a default,
# and ``$${NAME}`` is a literal ``${NAME}``.
_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MAX_DEPTH = 64


@dataclass
class SourceMap:
    """Positions of values by path; a path's position is where its value starts."""

    positions: dict[PathKey, Position] = field(default_factory=dict)
    key_positions: dict[PathKey, Position] = field(default_factory=dict)

    def locate(self, loc: tuple[Any, ...]) -> Position | None:
        """The deepest known position along ``loc``.

        Elements that are not part of the document (pydantic adds union tags and the like) are
        skipped, so an error inside a step still points at the step's line.
        """
        return self.positions.get(self.walk(loc))

    def walk(self, loc: tuple[Any, ...]) -> PathKey:
        """The longest document path that ``loc`` (an error location) leads to.

        A union tag can have the same name as a document key (a step's tag ``say`` is also its
        ``say:`` key), so an element is skipped when the path continues only without it.
        """
        path: PathKey = ()
        for i, element in enumerate(loc):
            candidate = (*path, element)
            if not self._known(candidate):
                continue
            following = loc[i + 1] if i + 1 < len(loc) else None
            if (
                following is not None
                and not self._known((*candidate, following))
                and self._known((*path, following))
            ):
                continue
            path = candidate
        return path

    def _known(self, path: PathKey) -> bool:
        return path in self.positions or path in self.key_positions

    def key(self, path: PathKey) -> Position | None:
        """Where the key of a mapping entry is written (for 'unknown key' errors)."""
        return self.key_positions.get(path) or self.positions.get(path)


_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


class _Yaml12Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2's plain scalars.

    YAML 1.1 reads ``no``, ``yes``, ``on`` and ``off`` as booleans and ``20:00`` as the number
    1200: a caller's answer ``user: no`` or an opening time would silently change meaning.
    Only ``true``/``false`` are booleans here, and times stay text.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Yaml12Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


class _StrictComposer(_Yaml12Loader):
    """A safe loader whose composer refuses anchors, aliases and explicit tags."""

    def __init__(self, stream: str, file: Path) -> None:
        super().__init__(stream)
        self.file = file
        self.problems: list[FlowIssue] = []

    def _pos(self, mark: Any) -> Position:
        if mark is None:
            return Position(self.file, 1, 1)
        return Position(self.file, mark.line + 1, mark.column + 1)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            raise _Refused(self._pos(event.start_mark), "aliases (*name) are not allowed")
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise _Refused(self._pos(event.start_mark), "anchors (&name) are not allowed")
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and not (
            isinstance(event, ScalarEvent) and tag == "tag:yaml.org,2002:str"
        ):
            raise _Refused(
                self._pos(event.start_mark),
                f"YAML tags like '{tag}' are not allowed; write plain values",
            )
        node: Node | None = Composer.compose_node(self, parent, index)
        return node


class _Refused(Exception):
    def __init__(self, position: Position, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


def read_yaml(
    path: Path,
    *,
    display: Path | None = None,
    max_bytes: int = 1024 * 1024,
    env: Mapping[str, str] | None = None,
) -> tuple[Any, SourceMap, list[FlowIssue]]:
    """Read one YAML file into plain Python values and a :class:`SourceMap`.

    Returns ``(data, source_map, issues)``; ``data`` is None when the file could not be read.
    ``display`` is the path shown in messages (relative to the bot directory).
    """
    shown = display or path
    try:
        size = path.stat().st_size
    except OSError as exc:
        return None, SourceMap(), [FlowIssue(Position(shown, 1, 1), f"cannot read file: {exc}")]
    if size > max_bytes:
        message = (
            f"file is {size} bytes; the limit is {max_bytes} bytes (split it into smaller files)"
        )
        return None, SourceMap(), [FlowIssue(Position(shown, 1, 1), message)]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return (
            None,
            SourceMap(),
            [FlowIssue(Position(shown, 1, 1), f"not UTF-8 text ({exc.reason})")],
        )
    except OSError as exc:
        return None, SourceMap(), [FlowIssue(Position(shown, 1, 1), f"cannot read file: {exc}")]
    return parse_yaml(text, shown, env=env)


def parse_yaml(
    text: str, file: Path, *, env: Mapping[str, str] | None = None
) -> tuple[Any, SourceMap, list[FlowIssue]]:
    loader = _StrictComposer(text, file)
    try:
        root = loader.get_single_node()
    except _Refused as exc:
        return None, SourceMap(), [FlowIssue(exc.position, exc.message)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = loader._pos(mark)
        problem = exc.problem or exc.context or "invalid YAML"
        return None, SourceMap(), [FlowIssue(position, f"invalid YAML: {problem}")]
    except yaml.YAMLError as exc:
        return None, SourceMap(), [FlowIssue(Position(file, 1, 1), f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    if root is None:
        return None, SourceMap(), []
    builder = _Builder(file, env)
    data = builder.build(root, (), 0)
    return data, builder.source_map, builder.issues


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording positions on the way."""

    def __init__(self, file: Path, env: Mapping[str, str] | None) -> None:
        self.file = file
        self.env = env
        self.source_map = SourceMap()
        self.issues: list[FlowIssue] = []
        # Scalars are constructed by the safe constructor so that YAML's own rules for
        # booleans, numbers and nulls apply.
        self._constructor = _Yaml12Loader("")

    def _pos(self, node: Node) -> Position:
        return Position(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: Node, path: PathKey, depth: int) -> Any:
        self.source_map.positions[path] = self._pos(node)
        if depth > _MAX_DEPTH:
            self.issues.append(FlowIssue(self._pos(node), "values are nested too deeply"))
            return None
        if isinstance(node, MappingNode):
            result: dict[str, Any] = {}
            seen: dict[str, Position] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    self.issues.append(FlowIssue(self._pos(key_node), "keys must be plain words"))
                    continue
                key = str(self._constructor.construct_scalar(key_node))
                if key == "<<":
                    self.issues.append(
                        FlowIssue(self._pos(key_node), "merge keys (<<) are not allowed")
                    )
                    continue
                if key in seen:
                    first = seen[key]
                    self.issues.append(
                        FlowIssue(
                            self._pos(key_node),
                            f"'{key}' is written twice in the same place (first at line "
                            f"{first.line})",
                        )
                    )
                    continue
                seen[key] = self._pos(key_node)
                self.source_map.key_positions[(*path, key)] = self._pos(key_node)
                result[key] = self.build(value_node, (*path, key), depth + 1)
            return result
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        value = self._constructor.construct_object(node)
        if isinstance(value, str) and "$" in value and self.env is not None:
            value = self._substitute(value, node)
        return value

    def _substitute(self, value: str, node: Node) -> str:
        env = self.env or {}

        def replace(match: re.Match[str]) -> str:
            escaped, name, default = match.group(1), match.group(2), match.group(3)
            if escaped:
                return match.group(0)[1:]
            if name not in env and default is not None:
                return default
            if name not in env:
                self.issues.append(
                    FlowIssue(
                        self._pos(node),
                        f"environment variable '{name}' is not set (used as ${{{name}}})",
                    )
                )
                return ""
            return env[name]

        return _ENV_REF.sub(replace, value)
