"""Signed webhooks: a real receiver on loopback checks every request with ``verify``."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from voicebot.actions import signing
from voicebot.actions.executor import ActionExecutor
from voicebot.flows.schema import ActionDef

SECRET = "whsec-test-1"


@dataclass
class Receiver:
    url: str
    secrets: dict[str, str]
    seen: list[dict] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver("", {"/pay": SECRET, "/own": "per-action-secret", "/q": SECRET})

    async def check(request: web.Request) -> web.Response:
        raw = await request.read()
        header = request.headers.get(signing.HEADER)
        content = signing.signed_content(request.method, raw, request.rel_url.raw_query_string)
        entry = {"path": request.path, "raw": raw, "header": header, "content": content}
        state.seen.append(entry)
        try:
            signing.verify(content, header, state.secrets[request.path])
        except signing.SignatureError as exc:
            entry["error"] = str(exc)
            return web.json_response({"error": str(exc)}, status=401)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", check)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def _action(url: str, **extra) -> ActionDef:  # type: ignore[no-untyped-def]
    return ActionDef.model_validate({"http": {"url": url, **extra.pop("http", {})}, **extra})


async def test_every_webhook_is_signed_and_the_receiver_accepts_it(receiver: Receiver) -> None:
    actions = {
        "pay": _action(receiver.url + "/pay", body={"amount": "{{ args.amount }}", "note": "é"}),
        "q": _action(receiver.url + "/q", http={"method": "GET"}),
    }
    executor = ActionExecutor(actions, secret=SECRET)
    try:
        done = await executor.run("pay", {"amount": 12}, {})
        assert done.ok, done.error
        done = await executor.run("q", {"account": "12345678", "x": "a b"}, {})
        assert done.ok, done.error
    finally:
        await executor.aclose()
    pay, query = receiver.seen
    assert pay["header"].startswith("t=") and ",v1=" in pay["header"]
    assert pay["raw"] == '{"amount":12,"note":"é"}'.encode()
    # a GET has no body: its query string is what is signed
    assert query["raw"] == b"" and query["content"] == b"account=12345678&x=a+b"
    assert "error" not in pay and "error" not in query


async def test_per_action_secret_env_wins_and_a_missing_one_blocks_the_call(
    receiver: Receiver,
) -> None:
    actions = {
        "own": _action(receiver.url + "/own", secret_env="PAY_HOOK_SECRET"),
        "unset": _action(receiver.url + "/own", secret_env="NOT_SET_ANYWHERE"),
    }
    executor = ActionExecutor(actions, secret=SECRET, env={"PAY_HOOK_SECRET": "per-action-secret"})
    try:
        assert (await executor.run("own", {"a": 1}, {})).ok
        missing = await executor.run("unset", {"a": 1}, {})
    finally:
        await executor.aclose()
    # never sent unsigned when the flow asked for a signature
    assert not missing.ok and missing.error == "signing secret not set"
    assert len(receiver.seen) == 1


async def test_wrong_secret_is_rejected_by_the_receiver(receiver: Receiver) -> None:
    executor = ActionExecutor({"pay": _action(receiver.url + "/pay")}, secret="not-the-secret")
    try:
        done = await executor.run("pay", {"amount": 1}, {})
    finally:
        await executor.aclose()
    assert not done.ok and done.error == "HTTP 401"
    assert "wrong secret or altered body" in receiver.seen[0]["error"]


def test_tampered_body_old_timestamp_and_bad_headers_fail() -> None:
    body = b'{"amount":12}'
    now = int(time.time())
    header = signing.sign(body, SECRET, timestamp=now)
    assert signing.verify(body, header, SECRET) == now
    with pytest.raises(signing.SignatureError, match="altered body"):
        signing.verify(b'{"amount":1200}', header, SECRET)
    with pytest.raises(signing.SignatureError, match="altered body"):
        signing.verify(body, header, "other-secret")
    old = signing.sign(body, SECRET, timestamp=now - 301)
    with pytest.raises(signing.SignatureError, match="replay"):
        signing.verify(body, old, SECRET)
    # a replayed header with its timestamp moved forward no longer matches
    moved = old.replace(f"t={now - 301}", f"t={now}")
    with pytest.raises(signing.SignatureError, match="altered body"):
        signing.verify(body, moved, SECRET)
    with pytest.raises(signing.SignatureError, match="missing"):
        signing.verify(body, None, SECRET)
    with pytest.raises(signing.SignatureError, match="malformed"):
        signing.verify(body, "sha256=abc", SECRET)
    # rotation: the old and the new secret are both accepted while both are listed
    assert signing.verify(body, header, ["new-secret", SECRET]) == now


def test_the_documented_openssl_check_gives_the_same_signature() -> None:
    body = b'{"account":"12345678"}'
    header = signing.sign(body, SECRET, timestamp=1767225600)
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", SECRET, "-r"],
        input=f"{t}.".encode() + body,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert out.split()[0] == v1
