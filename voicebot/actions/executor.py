"""Runs a flow's named actions: HTTP webhooks and registered Python handlers.

Flows are data and handlers are code: YAML names an action, this module maps the name to a
webhook call (httpx) or to an ``async``/plain Python function. Whatever goes wrong (timeout,
5xx, non-JSON, an exception in a handler) comes back as a failed :class:`ActionCompleted`, so
the flow's ``on_error`` runs and the call goes on.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from voicebot.actions import signing
from voicebot.engine.events import ActionCompleted
from voicebot.flows import expressions as ex
from voicebot.flows.schema import ActionDef

logger = logging.getLogger("voicebot.actions")

Handler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[Any] | Any]
_handlers: dict[str, Handler] = {}


def action_handler(name: str) -> Callable[[Handler], Handler]:
    """Register a Python handler under ``name`` (used as ``python: <module>:<function>`` too).

    A handler receives ``(args, context)`` (``context`` holds ``slots``, ``caller`` and the
    other expression names) and returns a JSON-like value that becomes ``result``.
    """

    def register(function: Handler) -> Handler:
        _handlers[name] = function
        return function

    return register


class ActionExecutor:
    def __init__(
        self,
        actions: Mapping[str, ActionDef],
        *,
        client: httpx.AsyncClient | None = None,
        default_timeout: float = 5.0,
        mocks: Mapping[str, Any] | None = None,
        offline: bool = False,
        secret: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.actions = actions
        # Webhooks are signed with the action's own secret (``secret_env``, looked up in
        # ``env`` at call time so a rotated secret needs no reload) or this default one.
        self.secret = secret
        self.env = env if env is not None else {}
        self._warned_unsigned = False
        # In conversation tests no webhook may reach the network: an HTTP action without a mock
        # fails (and is listed in `unmocked`) instead of being called.
        self.offline = offline
        self.unmocked: list[str] = []
        self.default_timeout = default_timeout
        self.mocks = dict(mocks or {})
        self._client = client
        self._own_client = client is None
        self._resolved: dict[str, Handler] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    def with_mocks(self, mocks: Mapping[str, Any], *, offline: bool = False) -> ActionExecutor:
        """A copy whose named actions return canned responses (conversation tests)."""
        copy = ActionExecutor(
            self.actions,
            client=self._client,
            default_timeout=self.default_timeout,
            mocks=mocks,
            offline=offline,
            secret=self.secret,
            env=self.env,
        )
        copy._own_client = False
        return copy

    async def run(
        self, name: str, args: dict[str, Any], context: dict[str, Any]
    ) -> ActionCompleted:
        started = time.perf_counter()
        try:
            if name in self.mocks:
                done = _mocked(name, self.mocks[name])
            else:
                definition = self.actions.get(name)
                if definition is None:
                    done = ActionCompleted(name, ok=False, error="unknown action")
                elif definition.http is not None and self.offline:
                    self.unmocked.append(name)
                    done = ActionCompleted(name, ok=False, error="webhook not mocked (offline)")
                elif definition.http is not None:
                    done = await self._http(name, definition, args, context)
                else:
                    done = await self._python(name, definition, args, context)
        except Exception as exc:  # a handler's bug must not end the call
            logger.exception("action raised", extra={"action": name})
            done = ActionCompleted(name, ok=False, error=type(exc).__name__)
        logger.info(
            "action finished",
            extra={
                "action": name,
                "ok": done.ok,
                "error": done.error,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return done

    async def _http(
        self, name: str, definition: ActionDef, args: dict[str, Any], context: dict[str, Any]
    ) -> ActionCompleted:
        spec = definition.http
        assert spec is not None
        scope = {**context, "args": args}
        url = ex.render(spec.url, scope)
        headers = {k: ex.render(v, scope) for k, v in spec.headers.items()}
        body = ex.value(definition.body, scope) if definition.body is not None else args or None
        timeout = spec.timeout or self.default_timeout
        secret = self._secret(name, definition)
        if secret is None and definition.secret_env:
            return ActionCompleted(name, ok=False, error="signing secret not set")
        # The body is serialised here, once, so the bytes signed are the bytes sent.
        content = b""
        target = httpx.URL(url)
        if spec.method in ("GET", "DELETE"):
            params = {k: v for k, v in (body or {}).items() if v is not None}
            target = httpx.URL(url, params=params) if params else target
        else:
            content = json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
            ).encode()
            headers = {**headers, "Content-Type": "application/json"}
        error = "failed"
        for attempt in range(spec.retries + 1):
            if attempt:
                await asyncio.sleep(min(0.25 * 2**attempt, 2.0))
            sent = dict(headers)
            if secret is not None:
                # Signed per attempt: a retry carries a fresh timestamp, not a stale one.
                signed = signing.signed_content(spec.method, content, target.query)
                sent[signing.HEADER] = signing.sign(signed, secret)
            try:
                response = await self.client.request(
                    spec.method, target, headers=sent, content=content or None, timeout=timeout
                )
            except httpx.TimeoutException:
                error = "timeout"
                continue
            except httpx.HTTPError as exc:
                error = f"connection error ({type(exc).__name__})"
                continue
            if response.status_code >= 500:
                error = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                return ActionCompleted(name, ok=False, error=f"HTTP {response.status_code}")
            if not response.content:
                return ActionCompleted(name, ok=True, response={})
            try:
                return ActionCompleted(name, ok=True, response=response.json())
            except ValueError:
                return ActionCompleted(name, ok=False, error="response is not JSON")
        return ActionCompleted(name, ok=False, error=error)

    def _secret(self, name: str, definition: ActionDef) -> str | None:
        if definition.secret_env:
            value = self.env.get(definition.secret_env)
            if not value:
                logger.error(
                    "webhook signing secret missing; not calling it",
                    extra={"action": name, "variable": definition.secret_env},
                )
                return None
            return value
        if not self.secret and not self._warned_unsigned:
            self._warned_unsigned = True
            logger.warning(
                "webhooks are sent unsigned: set VOICEBOT_WEBHOOK_SECRET", extra={"action": name}
            )
        return self.secret or None

    async def _python(
        self, name: str, definition: ActionDef, args: dict[str, Any], context: dict[str, Any]
    ) -> ActionCompleted:
        handler = self._handler(name, definition)
        if handler is None:
            return ActionCompleted(name, ok=False, error="handler not found")
        outcome = handler(args, context)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return ActionCompleted(name, ok=True, response=outcome)

    def _handler(self, name: str, definition: ActionDef) -> Handler | None:
        if name in self._resolved:
            return self._resolved[name]
        handler = _handlers.get(name)
        if handler is None and definition.python:
            module_name, _, attribute = definition.python.partition(":")
            try:
                handler = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError):
                logger.error(
                    "python action not importable", extra={"action": name, "ref": definition.python}
                )
                return None
        if handler is not None:
            self._resolved[name] = handler
        return handler


def _mocked(name: str, canned: Any) -> ActionCompleted:
    """A test mock: the canned response, or ``{error: "..."}`` to simulate a failure."""
    if isinstance(canned, dict) and set(canned) == {"error"}:
        return ActionCompleted(name, ok=False, error=str(canned["error"]))
    return ActionCompleted(name, ok=True, response=canned)
