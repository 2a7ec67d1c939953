"""Templates (``{{ ... }}``) and conditions (``if:``) in Jinja2's sandbox.

The sandbox stops a flow file from reaching Python internals (``__class__``, file access), and
compiled templates are cached by their source text because the same prompt is rendered on every
call. A missing value renders as an empty string and is false in a condition, so
``{{ caller.name }}`` is simply empty for an unknown caller instead of an error mid-call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

# The names a template may use; anything else is a mistake reported at load time.
ROOT_NAMES = frozenset(
    {
        "slots",
        "result",
        "caller",
        "intent",
        "sentiment",
        "queue",
        "now",
        "hours",
        "attempts",
        "args",
        "language",  # extension: the call's current language, e.g. es-ES
    }
)
_HAS_TEMPLATE = re.compile(r"\{\{|\{%")
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)


class ExpressionError(ValueError):
    """A template or condition that does not parse; the message is for a content designer."""


def _spell(value: Any) -> str:
    """``1234`` -> ``1 2 3 4``, so text-to-speech reads digits one by one."""
    return " ".join(str(value).replace(" ", ""))


def _last(value: Any, count: int = 4) -> str:
    return str(value)[-count:]


def _env() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
    env.filters["spell"] = _spell
    env.filters["last"] = _last
    return env


_ENV = _env()


@dataclass(frozen=True)
class References:
    roots: frozenset[str]
    slots: frozenset[str]


@lru_cache(maxsize=4096)
def _template(source: str) -> Any:
    try:
        return _ENV.from_string(source)
    except TemplateError as exc:
        raise ExpressionError(_describe(exc)) from None


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    try:
        return _ENV.compile_expression(source, undefined_to_none=False)
    except TemplateError as exc:
        raise ExpressionError(_describe(exc)) from None


def _describe(exc: TemplateError) -> str:
    return str(exc.message or exc).split("\n")[0]


_TEMPLATE_PARTS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


def strip_templates(text: str) -> str:
    """The literal parts of a template, for when it cannot be rendered."""
    return _TEMPLATE_PARTS.sub("", text)


def is_template(text: str) -> bool:
    return bool(_HAS_TEMPLATE.search(text))


def check_template(source: str) -> References:
    """Parse a template; raises :class:`ExpressionError` if it does not parse."""
    _template(source)
    return _references(_ENV.parse(source))


def check_condition(source: str) -> References:
    if not source.strip():
        raise ExpressionError("the condition is empty")
    _expression(source)
    return _references(_ENV.parse("{{ (" + source + ") }}"))


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render a template to text. Errors come back as ExpressionError (the engine decides)."""
    if not is_template(source):
        return source
    try:
        return str(_template(source).render(**context))
    except ExpressionError:
        raise
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def value(source: Any, context: Mapping[str, Any]) -> Any:
    """A value for ``set``/``save``/``args``: ``"{{ expr }}"`` keeps the expression's type.

    ``save: { vip: "{{ result.vip }}" }`` must store the boolean, not the text "False".
    Mappings and lists are evaluated item by item; other values pass through.
    """
    if isinstance(source, str):
        match = _SINGLE_EXPRESSION.match(source)
        if match:
            result = evaluate(match.group("expr"), context)
            return None if isinstance(result, ChainableUndefined) else result
        return render(source, context)
    if isinstance(source, Mapping):
        return {k: value(v, context) for k, v in source.items()}
    if isinstance(source, list):
        return [value(v, context) for v in source]
    return source


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    try:
        return _expression(source)(**context)
    except ExpressionError:
        raise
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def condition(source: str, context: Mapping[str, Any]) -> bool:
    result = evaluate(source, context)
    if isinstance(result, ChainableUndefined):
        return False
    return bool(result)


def _references(tree: nodes.Template) -> References:
    roots: set[str] = set()
    slots: set[str] = set()
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in assigned:
            roots.add(name.name)
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == "slots":
            slots.add(attr.attr)
    for item in tree.find_all(nodes.Getitem):
        named = isinstance(item.node, nodes.Name) and item.node.name == "slots"
        if named and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            slots.add(item.arg.value)
    return References(frozenset(roots), frozenset(slots))


def is_condition(source: str) -> bool:
    """Whether ``source`` is an expression over the flow names (``slots.plan != none``) rather
    than prose (``the caller has chosen a plan``): an ``llm`` step's ``until`` may be either."""
    try:
        refs = check_condition(source)
    except ExpressionError:
        return False
    return bool(refs.roots) and refs.roots <= ROOT_NAMES
