"""The supervisor's API over real HTTP and WebSockets (uvicorn on loopback): who may read the
reports, the calls and the wallboard; bad requests answered with the reason; CSV downloads; a
call opened in full (and audited) with its recording; the wallboard pushed when a call queues."""

from __future__ import annotations

import asyncio
import json
import wave
from typing import Any

import websockets

from tests.queues.test_api import USERS, Start, cookie_of, queue_call

SUPERVISOR_ROUTES = [
    "/api/reports/calls",
    "/api/reports/calls?by=agent",
    "/api/reports/intervals?interval=15",
    "/api/reports/bot",
    "/api/calls",
    "/api/supervisor/wallboard",
]


def test_who_may_read_reports_calls_and_the_wallboard(serve: Start) -> None:
    server = serve(USERS)
    with server.client() as anonymous:
        for path in SUPERVISOR_ROUTES:
            assert anonymous.get(path).status_code == 401, path
    with server.sign_in("alice") as agent:
        for path in SUPERVISOR_ROUTES:
            assert agent.get(path).status_code == 403, path
    for name in ("sue", "ada"):
        with server.sign_in(name) as supervisor:
            for path in SUPERVISOR_ROUTES:
                assert supervisor.get(path).status_code == 200, path
    with server.service() as token:
        for path in SUPERVISOR_ROUTES:
            assert token.get(path).status_code == 200, path
    with server.client() as anonymous:
        page = anonymous.get("/supervisor")  # the page itself shows the sign-in form
        assert page.status_code == 200 and "supervisor.js" in page.text


def test_bad_requests_say_what_is_wrong(serve: Start) -> None:
    server = serve(USERS)
    with server.sign_in("sue") as sue:
        after = sue.get("/api/reports/calls", params={"from": "2026-11-08", "to": "2026-11-02"})
        assert after.status_code == 422 and "after" in after.json()["detail"]
        bad_date = sue.get("/api/reports/bot", params={"from": "yesterday"})
        assert bad_date.status_code == 422 and "2026-11-30" in bad_date.json()["detail"]
        unknown = sue.get("/api/reports/intervals", params={"queue": "nope"})
        assert unknown.status_code == 404
        assert "billing, general" in unknown.json()["detail"]
        assert sue.get("/api/reports/calls", params={"by": "week"}).status_code == 422
        assert sue.get("/api/reports/intervals", params={"interval": 7}).status_code == 422
        assert sue.get("/api/reports/calls", params={"tz": "Mars/Base"}).status_code == 422
        assert sue.get("/api/reports/calls", params={"format": "xls"}).status_code == 422
        assert sue.get("/api/calls", params={"min_score": 90, "max_score": 10}).status_code == 422
        assert sue.get("/api/calls/no-such-call").status_code == 404


def test_csv_download_and_a_call_in_full(serve: Start) -> None:
    server = serve(USERS)
    queued = queue_call(server, "billing")
    with server.sign_in("sue") as sue:
        csv_file = sue.get("/api/reports/calls", params={"by": "queue", "format": "csv"})
        assert csv_file.status_code == 200
        assert csv_file.headers["content-type"].startswith("text/csv")
        assert "attachment" in csv_file.headers["content-disposition"]
        assert csv_file.content.startswith(b"\xef\xbb\xbfQueue,Offered,Answered")
        bot_csv = sue.get("/api/reports/bot", params={"format": "csv"})
        assert bot_csv.content.startswith(b"\xef\xbb\xbfFigure,Value")

        listed = sue.get("/api/calls").json()
        assert listed["total"] == 1
        call = listed["calls"][0]
        assert call["queue"] == "billing" and call["score"] is None
        assert call["caller"] == "Ann Example"
        call_id = call["id"]

        folder = server.settings.data_dir / "recordings" / call_id
        folder.mkdir(parents=True)
        with wave.open(str(folder / "segment-01.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x00\x00" * 800)
        (folder / "notes.txt").write_text("not audio")

        full = sue.get(f"/api/calls/{call_id}").json()
        number = full["call"]["caller_number"]
        assert number.endswith("0123") and "7700900" not in number  # masked, as everywhere
        assert [line["text"] for line in full["transcript"]] == [
            "Hello, how can I help?",
            "why is my bill higher",
        ]
        assert full["handoffs"][0]["summary"] == "Ann wants to know why her bill went up."
        assert full["entries"][0]["id"] == queued["entry_id"]
        assert full["entries"][0]["status"] == "waiting"
        assert [r["name"] for r in full["recordings"]] == ["segment-01.wav"]
        audio = sue.get(full["recordings"][0]["url"])
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
        assert audio.content[:4] == b"RIFF"
        assert sue.get(f"/api/calls/{call_id}/recordings/notes.txt").status_code == 404
        assert sue.get(f"/api/calls/{call_id}/recordings/..%2Fvoicebot.db").status_code == 404
    with server.sign_in("ada") as admin:  # the audit log is for admins
        audit = admin.get("/api/audit", params={"action": "view_call"}).json()
    assert [(e["actor"], e["target"]) for e in audit] == [("sue", call_id)]


async def _board(ws: Any, within: float = 10) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=within))
        if message["type"] == "wallboard":
            return message


def test_the_wallboard_is_pushed_when_a_call_queues(serve: Start) -> None:
    server = serve(USERS)
    with server.sign_in("sue") as sue, server.sign_in("alice") as alice:
        supervisor_cookie, agent_cookie = cookie_of(sue), cookie_of(alice)

    async def run() -> None:
        url = server.ws_url + "/api/supervisor/ws"
        async with websockets.connect(url, additional_headers={"Cookie": supervisor_cookie}) as ws:
            first = await _board(ws)
            billing = next(q for q in first["queues"] if q["name"] == "billing")
            assert billing["waiting"] == 0
            await asyncio.to_thread(queue_call, server, "billing")
            while True:  # boards come on every change; wait for the one with the caller
                board = await _board(ws)
                billing = next(q for q in board["queues"] if q["name"] == "billing")
                if billing["waiting"] == 1:
                    break
            assert board["seq"] > first["seq"] and billing["longest_wait"] is not None
            await ws.send(json.dumps({"type": "ping"}))
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "pong":
                pass
            await ws.send("not json")
            while (reply := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "error":
                pass
            assert "JSON" in reply["message"]
        for cookie, code in ((agent_cookie, 4403), (None, 4401)):
            headers = {"Cookie": cookie} if cookie else {}
            async with websockets.connect(url, additional_headers=headers) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), timeout=10)
                except websockets.ConnectionClosed as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == code
                else:
                    raise AssertionError(f"expected close {code}")

    asyncio.run(run())
