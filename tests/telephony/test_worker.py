"""The LiveKit worker: its command line, the start-up check of the LiveKit credentials, and what
happens to a phone caller at a handoff (cold transfer, or an apology when the target refuses).
No LiveKit server runs here; LiveKit's API is the fake Twirp server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from livekit import api
from livekit.protocol import sip as proto_sip
from sqlalchemy import select

from tests.conftest import REPO
from tests.fakes.livekit_server import FakeLiveKit
from tests.telephony.conftest import KEY, SECRET
from tests.telephony.packets import handoff_packet
from voicebot.flows.schema import Queue
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.store.db import open_database
from voicebot.store.models import QueueEntry
from voicebot.telephony import worker
from voicebot.telephony.worker import WorkerConfigError, probe, server_options


def _voicebot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "voicebot", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**clean, **env},
    )


def test_worker_help_lists_start_and_dev() -> None:
    done = _voicebot("worker", "--help", env={})
    assert done.returncode == 0
    assert "start" in done.stdout and "dev" in done.stdout


def test_missing_credentials_are_one_clear_line() -> None:
    done = _voicebot("worker", "start", env={})
    assert done.returncode == 2
    assert "LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_server_that_is_not_there_is_one_clear_line() -> None:
    env = {"LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}
    done = _voicebot("worker", "start", env=env)
    assert done.returncode == 2
    assert "cannot connect to LiveKit at ws://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_wrong_secret_is_one_clear_line(lk: FakeLiveKit) -> None:
    env = {"LIVEKIT_URL": lk.url, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": "x" * 40}
    done = _voicebot("worker", "dev", env=env)
    assert done.returncode == 2
    assert "401" in done.stderr and "LIVEKIT_API_SECRET" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_probe_passes_with_the_right_credentials(lk: FakeLiveKit) -> None:
    await probe(lk.url.replace("http://", "ws://"), KEY, SECRET)
    with pytest.raises(WorkerConfigError, match="401"):
        await probe(lk.url, KEY, "wrong" * 10)


def test_server_options_name_the_agent_and_drain_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVEKIT_AGENT_NAME", raising=False)
    options = server_options()
    assert options.agent_name == "voicebot"  # what `voicebot livekit setup-sip` dispatches to
    assert options.drain_timeout == 1800
    # job processes find these by module and name
    assert options.entrypoint_fnc is worker.entrypoint and options.prewarm_fnc is worker.prewarm
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "acme")
    assert server_options().agent_name == "acme"
    assert server_options(agent_name="other").agent_name == "other"


# --- the handoff on a phone call -------------------------------------------------------------


class _Spoken:
    """What the call's session was asked to say (the session itself needs a room)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str, **_: Any) -> Any:
        self.lines.append(text)

        async def wait_for_playout() -> None:
            return None

        return SimpleNamespace(wait_for_playout=wait_for_playout)


def _call(queues: dict[str, Queue]) -> Any:
    definition = SimpleNamespace(queues=queues)
    return SimpleNamespace(
        call=SimpleNamespace(bot=SimpleNamespace(loaded=SimpleNamespace(definition=definition))),
        session=_Spoken(),
    )


async def test_a_handoff_to_a_transfer_queue_sends_the_caller_there(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    lk.add_room("call-1")
    caller = lk.add_sip_caller("call-1", "+447700900123")
    ctx = SimpleNamespace(api=lkapi, room=SimpleNamespace(name="call-1"))
    call = _call({"care": Queue(transfer="sip:care@pbx.example.com")})
    reply = SimpleNamespace(
        handoff=handoff_packet(packet_id="H-7", queue="care", intent="complaint")
    )
    assert await worker._transfer(ctx, call, reply, caller.identity)  # type: ignore[arg-type]
    [request] = lk.calls("TransferSIPParticipant", proto_sip.TransferSIPParticipantRequest)
    assert request.transfer_to == "sip:care@pbx.example.com"
    assert request.headers["X-Voicebot-Handoff-Id"] == "H-7"
    assert call.session.lines == []


async def test_a_refused_transfer_tells_the_caller_and_keeps_the_handoff(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    lk.add_room("call-1")
    caller = lk.add_sip_caller("call-1", "+447700900123")
    lk.fail("TransferSIPParticipant", "unavailable", "transfer failed: 603 Decline")
    ctx = SimpleNamespace(api=lkapi, room=SimpleNamespace(name="call-1"))
    call = _call({"care": Queue(transfer="tel:+442079460999")})
    reply = SimpleNamespace(
        handoff=handoff_packet(packet_id="H-7", queue="care", intent="complaint")
    )
    assert not await worker._transfer(ctx, call, reply, caller.identity)  # type: ignore[arg-type]
    assert call.session.lines == [worker._TRANSFER_FAILED]
    assert [p.identity for p in lk.participants("call-1")] == [caller.identity]


async def test_built_in_queues_and_goodbyes_transfer_nothing(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    ctx = SimpleNamespace(api=lkapi, room=SimpleNamespace(name="call-1"))
    call = _call({"general": Queue()})
    for reply in (
        SimpleNamespace(handoff=handoff_packet(queue="general")),
        SimpleNamespace(handoff=None),
    ):
        assert not await worker._transfer(ctx, call, reply, "sip_x")  # type: ignore[arg-type]
    assert lk.requests == []


def test_the_example_deploy_names_the_same_agent() -> None:
    compose = (Path(REPO) / "deploy" / "docker-compose.yml").read_text()
    assert "setup-sip" in (Path(REPO) / "deploy" / "README.md").read_text()
    assert '"worker", "start"' in compose or "worker start" in compose


async def test_a_refused_transfer_queues_the_promised_callback(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, tmp_path: Path
) -> None:
    """With the built-in queues on a shared database, "we'll call you back" is a callback in
    the queue, at the place the caller had when they were handed over."""
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}")
    care = Queue(skills=["care"], transfer="tel:+442079460999")
    callbacks = QueueService(db, LocalBus(), {"care": care})
    try:
        lk.add_room("call-1")
        caller = lk.add_sip_caller("call-1", "+447700900123")
        lk.fail("TransferSIPParticipant", "unavailable", "transfer failed: 486 Busy Here")
        ctx = SimpleNamespace(api=lkapi, room=SimpleNamespace(name="call-1"))
        call = _call({"care": care})
        packet = handoff_packet(packet_id="H-9", queue="care", intent="complaint")
        reply = SimpleNamespace(handoff=packet)
        transferred = await worker._transfer(ctx, call, reply, caller.identity, callbacks)  # type: ignore[arg-type]
        assert not transferred and call.session.lines == [worker._TRANSFER_FAILED]
        async with db.session() as session:
            [entry] = (await session.scalars(select(QueueEntry))).all()
        assert entry.kind == "callback" and entry.queue == "care" and entry.skills == ["care"]
        assert entry.callback_number == "+447700900123" and entry.status == "waiting"
        assert entry.enqueued_at == packet.created_at  # the caller's place is kept
        assignment = await callbacks.assignment(entry.id)
        assert assignment is not None
        assert "transfer to tel:+442079460999 failed" in assignment["packet"]["reason"]
    finally:
        await db.aclose()


async def test_recording_pauses_while_the_caller_gives_a_sensitive_answer(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    """``VOICEBOT_RECORDING=calls``: the worker records from the start, and the call's
    listening hook (one per reply) pauses and resumes it around a sensitive collect."""
    lk.add_room("call-1")
    lk.add_sip_caller("call-1", "+447700900123")
    ctx = SimpleNamespace(api=lkapi, room=SimpleNamespace(name="call-1"))
    settings = SimpleNamespace(recording="calls", recording_filepath="rec/{room}-{segment}.ogg")
    call = SimpleNamespace(on_listen=None, call=SimpleNamespace(state=SimpleNamespace(call_id="c")))
    recorder = await worker._start_recording(ctx, settings, call)  # type: ignore[arg-type]
    assert recorder is not None and recorder.state == "recording"
    await call.on_listen(False)  # an ordinary question: nothing changes
    await call.on_listen(True)  # "please key in your card number"
    assert recorder.state == "paused"
    await call.on_listen(False)
    await recorder.stop()
    started = lk.calls("StartRoomCompositeEgress")
    assert [r.file_outputs[0].filepath for r in started] == ["rec/call-1-1.ogg", "rec/call-1-2.ogg"]
    assert len(lk.calls("StopEgress")) == 2
    off = SimpleNamespace(recording="off", recording_filepath="x")
    assert await worker._start_recording(ctx, off, call) is None  # type: ignore[arg-type]


def _decoder_processes() -> set[int]:
    """pocketsphinx decoder workers (spawned pool processes) on this machine."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.spawn import spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


@pytest.mark.timeout(300)
def test_sigterm_drains_and_the_job_processes_exit_with_their_decoders(
    lk: FakeLiveKit, tmp_path: Path
) -> None:
    """The worker registers nowhere (the fake has no worker endpoint), but its prewarmed job
    processes are real: on SIGTERM they must exit at once, taking their decoder processes with
    them. They used to hang at exit joining the decoders, be killed after livekit's close
    timeout and leave the decoders running."""
    before = _decoder_processes()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEBOT_", "LIVEKIT_"))}
    env = {
        **clean,
        "LIVEKIT_URL": lk.url.replace("http://", "ws://"),
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "VOICEBOT_DATA_DIR": str(tmp_path),
        "VOICEBOT_LOG_JSON": "true",
    }
    worker_process = subprocess.Popen(
        [sys.executable, "-m", "voicebot", "worker", "start"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert worker_process.stdout is not None
        deadline = time.monotonic() + 240
        while sum("process initialized" in line for line in lines) < 1:
            assert time.monotonic() < deadline, "no job process was prewarmed:\n" + "".join(lines)
            line = worker_process.stdout.readline()
            assert line, "the worker exited:\n" + "".join(lines)
            lines.append(line)
        started = _decoder_processes() - before
        assert started, "the prewarmed job process started no decoder processes"
        worker_process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rest, _ = worker_process.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if worker_process.poll() is None:
            worker_process.kill()
            worker_process.wait()
    lines.append(rest)
    output = "".join(lines)
    assert worker_process.returncode == 0, output[-3000:]
    assert "did not exit in time" not in output, output[-3000:]
    assert took < 30, f"took {took:.1f} s"
    print(f"\nworker: exited {took:.1f} s after SIGTERM, with its decoder processes")
    time.sleep(1)
    assert not (started & _decoder_processes()), "decoder processes were left running"
