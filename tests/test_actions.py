"""HTTP webhooks against a real server on loopback, and Python handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from voicebot.actions.executor import ActionExecutor
from voicebot.flows.schema import ActionDef


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, list[dict]]]:
    seen: list[dict] = []
    calls = {"flaky": 0}

    async def lookup(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(
            {"path": request.path, "body": body, "auth": request.headers.get("Authorization")}
        )
        return web.json_response({"status": "ok", "balance": "42.50", "echo": body})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def flaky(request: web.Request) -> web.Response:
        calls["flaky"] += 1
        if calls["flaky"] <= 2:
            return web.Response(status=502)
        return web.json_response({"attempt": calls["flaky"]})

    async def query(request: web.Request) -> web.Response:
        return web.json_response(dict(request.query))

    app = web.Application()
    app.router.add_post("/lookup", lookup)
    app.router.add_post("/slow", slow)
    app.router.add_post("/html", html)
    app.router.add_post("/fail", fail)
    app.router.add_post("/flaky", flaky)
    app.router.add_get("/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def action(url: str, **http: object) -> ActionDef:
    return ActionDef.model_validate(
        {
            "http": {"url": url, **http},
            "body": {"account": "{{ slots.account }}", "n": "{{ args.n }}"},
        }
    )


CONTEXT = {"slots": {"account": "12345678"}, "caller": {}}


async def test_webhook_posts_rendered_body_and_returns_json(backend) -> None:
    base, seen = backend
    executor = ActionExecutor(
        {"lookup": action(base + "/lookup", headers={"Authorization": "Bearer {{ args.token }}"})}
    )
    done = await executor.run("lookup", {"n": 3, "token": "t0k"}, CONTEXT)
    await executor.aclose()
    assert done.ok and done.response["balance"] == "42.50"
    assert seen == [
        {"path": "/lookup", "body": {"account": "12345678", "n": 3}, "auth": "Bearer t0k"}
    ]


async def test_webhook_timeout_non_json_and_5xx_fail_cleanly(backend) -> None:
    base, _ = backend
    executor = ActionExecutor(
        {
            "slow": action(base + "/slow", timeout=0.2),
            "html": action(base + "/html"),
            "fail": action(base + "/fail"),
            "refused": action("http://127.0.0.1:9/none", timeout=1),
        }
    )
    results = {
        name: await executor.run(name, {}, CONTEXT) for name in ("slow", "html", "fail", "refused")
    }
    await executor.aclose()
    assert {k: (v.ok, v.error) for k, v in results.items()} == {
        "slow": (False, "timeout"),
        "html": (False, "response is not JSON"),
        "fail": (False, "HTTP 503"),
        "refused": (False, "connection error (ConnectError)"),
    }


async def test_retries_are_off_by_default_and_work_when_asked(backend) -> None:
    base, _ = backend
    once = ActionExecutor({"flaky": action(base + "/flaky")})
    assert (await once.run("flaky", {}, CONTEXT)).error == "HTTP 502"
    twice = ActionExecutor({"flaky": action(base + "/flaky", retries=1)})
    done = await twice.run("flaky", {}, CONTEXT)
    assert done.ok and done.response == {"attempt": 3}
    await once.aclose()
    await twice.aclose()


async def test_get_sends_query_parameters(backend) -> None:
    base, _ = backend
    definition = ActionDef.model_validate(
        {"http": {"method": "get", "url": base + "/query"}, "body": {"q": "{{ slots.account }}"}}
    )
    executor = ActionExecutor({"find": definition})
    done = await executor.run("find", {}, CONTEXT)
    await executor.aclose()
    assert done.response == {"q": "12345678"}


async def test_python_handlers_mocks_and_unknown_actions() -> None:
    executor = ActionExecutor(
        {
            "lookup": ActionDef(python="tests.handlers:lookup"),
            "broken": ActionDef(python="tests.handlers:broken"),
            "missing": ActionDef(python="tests.handlers:nothing_here"),
        }
    )
    assert (await executor.run("lookup", {"account": "12"}, CONTEXT)).response == {
        "balance": 142.5,
        "vip": True,
    }
    assert (await executor.run("broken", {}, CONTEXT)).error == "ConnectionError"
    assert (await executor.run("missing", {}, CONTEXT)).error == "handler not found"
    assert (await executor.run("nope", {}, CONTEXT)).error == "unknown action"
    mocked = executor.with_mocks({"lookup": {"balance": 1}, "broken": {"error": "timeout"}})
    assert (await mocked.run("lookup", {}, CONTEXT)).response == {"balance": 1}
    assert (await mocked.run("broken", {}, CONTEXT)).error == "timeout"


async def test_registered_handler_serves_an_action_by_name() -> None:
    from voicebot.actions.executor import action_handler

    @action_handler("greet_registered")
    async def greet(args: dict, context: dict) -> dict:
        return {"hello": context["slots"]["account"]}

    executor = ActionExecutor({"greet_registered": ActionDef(python="tests.handlers:unused")})
    assert (await executor.run("greet_registered", {}, CONTEXT)).response == {"hello": "12345678"}
