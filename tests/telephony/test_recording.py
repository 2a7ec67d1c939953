"""Call recording through LiveKit Egress, paused around sensitive input (against the fake
LiveKit Twirp server, through the real livekit-api client)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from livekit import api
from livekit.protocol import egress as proto_egress

from tests.fakes.livekit_server import FakeLiveKit
from tests.telephony.conftest import KEY, SECRET
from voicebot.config import Settings
from voicebot.telephony.recording import (
    DEFAULT_FILEPATH,
    CallRecorder,
    SensitiveGate,
)

# LiveKit's individual dispatch rule puts the caller's number in the room name.
NUMBER = "447700900123"
ROOM = f"call-_+{NUMBER}_x7Kq"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Clock:
    """One second further on each reading."""

    def __init__(self) -> None:
        self.now = T0 - 1

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def lk() -> Iterator[FakeLiveKit]:
    with FakeLiveKit(api_key=KEY, api_secret=SECRET) as server:
        server.add_room(ROOM)
        server.add_sip_caller(ROOM, f"+{NUMBER}")
        yield server


@pytest.fixture
def recorder(lkapi: api.LiveKitAPI) -> CallRecorder:
    return CallRecorder(lkapi, ROOM, filepath=DEFAULT_FILEPATH, clock=Clock())


def state(recorder: CallRecorder) -> str:
    """The recorder's state, read afresh (not narrowed by an earlier assert)."""
    return recorder.state


def methods(lk: FakeLiveKit) -> list[tuple[str, int]]:
    return [(r.method, r.status) for r in lk.requests]


def starts(lk: FakeLiveKit) -> list[proto_egress.RoomCompositeEgressRequest]:
    return lk.calls("StartRoomCompositeEgress", proto_egress.RoomCompositeEgressRequest)


def stops(lk: FakeLiveKit) -> list[str]:
    return [r.egress_id for r in lk.calls("StopEgress", proto_egress.StopEgressRequest)]


def expected_start(segment: int) -> proto_egress.RoomCompositeEgressRequest:
    return proto_egress.RoomCompositeEgressRequest(
        room_name=ROOM,
        audio_only=True,
        file_outputs=[
            proto_egress.EncodedFileOutput(
                file_type=proto_egress.EncodedFileType.OGG,
                filepath=f"recordings/{ROOM}/{ROOM}-{segment:02d}.ogg",
            )
        ],
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "voicebot.telephony.recording"]


def assert_no_caller_data(caplog: pytest.LogCaptureFixture) -> None:
    for record in logged(caplog):
        assert NUMBER not in record.getMessage()
        assert NUMBER not in repr(record.__dict__)


# --- segments -----------------------------------------------------------------------------------


async def test_a_pause_splits_the_recording_into_two_segments(
    lk: FakeLiveKit, recorder: CallRecorder
) -> None:
    assert await recorder.start() is True
    assert recorder.state == "recording"
    assert await recorder.pause("card_number") is True
    assert state(recorder) == "paused"
    assert await recorder.resume() is True
    await recorder.stop()
    assert state(recorder) == "stopped"

    assert starts(lk) == [expected_start(1), expected_start(2)]
    first, second = recorder.segments
    assert stops(lk) == [first.egress_id, second.egress_id]
    assert first.egress_id != second.egress_id
    assert first.filepath == f"recordings/{ROOM}/{ROOM}-01.ogg"
    assert second.filepath == f"recordings/{ROOM}/{ROOM}-02.ogg"
    assert [r.claims["video"]["roomRecord"] for r in lk.requests if r.claims] == [True] * 4
    assert {e.egress_id: e.status for e in lk.egresses} == {
        first.egress_id: proto_egress.EGRESS_ENDING,
        second.egress_id: proto_egress.EGRESS_ENDING,
    }
    # the clock is read once per event: start, stop (pause), gap opens, gap closes, start,
    # stop (end of call)
    assert recorder.report() == {
        "state": "stopped",
        "segments": [
            {
                "egress_id": first.egress_id,
                "filepath": first.filepath,
                "started_at": "2026-01-01T00:00:00+00:00",
                "ended_at": "2026-01-01T00:00:01+00:00",
                "ended_because": "card_number",
            },
            {
                "egress_id": second.egress_id,
                "filepath": second.filepath,
                "started_at": "2026-01-01T00:00:04+00:00",
                "ended_at": "2026-01-01T00:00:05+00:00",
                "ended_because": "stop",
            },
        ],
        "gaps": [
            {
                "reason": "card_number",
                "from": "2026-01-01T00:00:02+00:00",
                "to": "2026-01-01T00:00:03+00:00",
            }
        ],
        "pause_failures": [],
    }


async def test_stopping_while_paused_closes_the_gap_without_another_request(
    lk: FakeLiveKit, recorder: CallRecorder
) -> None:
    await recorder.start()
    await recorder.pause("pin")
    await recorder.stop()
    assert [m for m, _ in methods(lk)] == ["StartRoomCompositeEgress", "StopEgress"]
    report = recorder.report()
    assert report["state"] == "stopped"
    assert [g["reason"] for g in report["gaps"]] == ["pin"]
    assert report["gaps"][0]["to"] is not None


async def test_every_operation_is_idempotent(lk: FakeLiveKit, recorder: CallRecorder) -> None:
    assert await recorder.resume() is False  # not paused: nothing to resume
    assert await recorder.pause("pin") is True  # nothing recorded yet: nothing to pause
    assert lk.requests == []

    await recorder.start()
    await recorder.start()
    assert await recorder.resume() is True  # recording, not paused
    assert len(starts(lk)) == 1

    assert await recorder.pause("pin") is True
    assert await recorder.pause("pin") is True
    assert len(stops(lk)) == 1

    await recorder.resume()
    await recorder.resume()
    assert len(starts(lk)) == 2

    await recorder.stop()
    await recorder.stop()
    assert await recorder.start() is False  # stopped for good
    assert await recorder.resume() is False
    assert methods(lk) == [
        ("StartRoomCompositeEgress", 200),
        ("StopEgress", 200),
        ("StartRoomCompositeEgress", 200),
        ("StopEgress", 200),
    ]
    assert len(recorder.segments) == 2 and recorder.state == "stopped"


async def test_concurrent_calls_are_serialised(lk: FakeLiveKit, recorder: CallRecorder) -> None:
    await recorder.start()
    await asyncio.gather(recorder.pause("pin"), recorder.resume(), recorder.pause("cvv"))
    assert [m for m, _ in methods(lk)] == [
        "StartRoomCompositeEgress",
        "StopEgress",
        "StartRoomCompositeEgress",
        "StopEgress",
    ]
    assert recorder.state == "paused"
    assert [s.ended_because for s in recorder.segments] == ["pin", "cvv"]


# --- the privacy rule: a pause that cannot be confirmed is reported -----------------------------


async def test_a_failed_pause_is_retried_once(lk: FakeLiveKit, recorder: CallRecorder) -> None:
    await recorder.start()
    lk.fail("StopEgress", "unavailable", "egress not responding", times=1)
    assert await recorder.pause("card_number") is True
    assert recorder.state == "paused"
    egress_id = recorder.segments[0].egress_id
    assert stops(lk) == [egress_id, egress_id]
    assert [s for _, s in methods(lk)] == [200, 503, 200]
    assert recorder.report()["pause_failures"] == []


async def test_a_pause_that_fails_twice_is_reported_not_pretended(
    lk: FakeLiveKit, recorder: CallRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    await recorder.start()
    egress_id = recorder.segments[0].egress_id
    lk.fail("StopEgress", "internal", f"room {ROOM} broke", times=2)

    assert await recorder.pause("card_number") is False
    assert stops(lk) == [egress_id, egress_id]  # one retry, no more
    assert recorder.state == "recording"  # the truth: it may still be recording
    assert recorder.segments[0].ended_at is None
    [error] = [r for r in logged(caplog) if r.levelno == logging.ERROR]
    assert error.getMessage() == "recording could not be paused"
    assert [f["reason"] for f in recorder.report()["pause_failures"]] == ["card_number"]
    assert_no_caller_data(caplog)

    # the next sensitive step tries again, and a resume after the failed pause starts nothing
    assert await recorder.resume() is True
    assert await recorder.pause("pin") is True
    assert stops(lk) == [egress_id] * 3
    assert len(starts(lk)) == 1
    assert {e.egress_id: e.status for e in lk.egresses} == {egress_id: proto_egress.EGRESS_ENDING}


async def test_a_timed_out_stop_that_got_through_counts_as_paused(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = CallRecorder(lkapi, ROOM, clock=Clock())
    await recorder.start()
    stop = lkapi.egress.stop_egress

    async def stops_then_times_out(request: api.StopEgressRequest) -> Any:
        monkeypatch.setattr(lkapi.egress, "stop_egress", stop)
        await stop(request)
        raise TimeoutError

    monkeypatch.setattr(lkapi.egress, "stop_egress", stops_then_times_out)
    assert await recorder.pause("pin") is True
    # the retry finds the egress ending: failed_precondition, so nothing records
    assert methods(lk)[1:] == [("StopEgress", 200), ("StopEgress", 412)]
    assert recorder.segments[0].ended_because == "pin"


async def test_an_egress_that_ended_on_its_own_needs_no_pause(
    lk: FakeLiveKit, recorder: CallRecorder
) -> None:
    await recorder.start()
    lk.end_egress(recorder.segments[0].egress_id, error="limit reached")
    assert await recorder.pause("pin") is True
    assert methods(lk)[1:] == [("StopEgress", 412)]  # not retried
    assert recorder.segments[0].ended_because == "ended"


# --- failures never propagate ---------------------------------------------------------------------


async def test_a_refused_start_fails_the_recording_not_the_call(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = CallRecorder(lkapi, "no-such-room", clock=Clock())
    assert await recorder.start() is False
    assert recorder.state == "failed"
    assert methods(lk) == [("StartRoomCompositeEgress", 404)]  # a 4xx: nothing to clean up
    assert await recorder.pause("pin") is True  # nothing records
    assert await recorder.resume() is False
    await recorder.stop()
    assert recorder.state == "failed"
    assert len(lk.requests) == 1
    assert recorder.report() == {
        "state": "failed",
        "segments": [],
        "gaps": [],
        "pause_failures": [],
    }
    assert [r.getMessage() for r in logged(caplog)] == ["recording could not be started"]


async def test_a_failed_resume_leaves_the_rest_unrecorded(
    lk: FakeLiveKit, recorder: CallRecorder
) -> None:
    await recorder.start()
    await recorder.pause("pin")
    lk.fail("StartRoomCompositeEgress", "unavailable", "egress not connected")
    assert await recorder.resume() is False
    assert recorder.state == "failed"
    # a 5xx may come after the server acted: it looks for a stray egress of ours
    assert [m for m, _ in methods(lk)] == [
        "StartRoomCompositeEgress",
        "StopEgress",
        "StartRoomCompositeEgress",
        "ListEgress",
    ]
    [listed] = lk.calls("ListEgress", proto_egress.ListEgressRequest)
    assert (listed.room_name, listed.active) == (ROOM, True)
    assert len(recorder.segments) == 1
    await recorder.stop()
    assert recorder.state == "failed"


async def test_an_egress_started_by_a_timed_out_start_is_stopped(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = CallRecorder(lkapi, ROOM, clock=Clock())
    start = lkapi.egress.start_room_composite_egress

    async def starts_then_times_out(request: api.RoomCompositeEgressRequest) -> Any:
        await start(request)
        raise TimeoutError

    monkeypatch.setattr(lkapi.egress, "start_room_composite_egress", starts_then_times_out)
    assert await recorder.start() is False
    assert recorder.state == "failed"
    [stray] = lk.egresses
    assert stops(lk) == [stray.egress_id]
    assert stray.status == proto_egress.EGRESS_ENDING
    assert [(s.egress_id, s.ended_because) for s in recorder.segments] == [
        (stray.egress_id, "start_failed")
    ]
    assert recorder.segments[0].filepath == f"recordings/{ROOM}/{ROOM}-01.ogg"
    assert await recorder.pause("pin") is True
    assert len(lk.requests) == 3  # start, list, stop: the sweep was done


async def test_an_unchecked_stray_makes_the_next_pause_check_again(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = CallRecorder(lkapi, ROOM, clock=Clock())
    lk.fail("StartRoomCompositeEgress", "internal")
    lk.fail("ListEgress", "internal")
    assert await recorder.start() is False
    assert await recorder.pause("pin") is True  # the second look finds nothing running
    assert [m for m, _ in methods(lk)] == ["StartRoomCompositeEgress", "ListEgress", "ListEgress"]
    messages = [r.getMessage() for r in logged(caplog)]
    assert messages == ["recording could not be started", "could not check for a stray recording"]
    assert_no_caller_data(caplog)


async def test_wrong_credentials_fail_the_recording(lk: FakeLiveKit) -> None:
    async with api.LiveKitAPI(lk.url, KEY, "x" * 48) as client:
        recorder = CallRecorder(client, ROOM, clock=Clock())
        assert await recorder.start() is False
        assert await recorder.pause("pin") is True
        await recorder.stop()
    assert recorder.state == "failed"
    assert methods(lk) == [("StartRoomCompositeEgress", 401)]
    assert lk.egresses == []


async def test_no_server_fails_the_recording(caplog: pytest.LogCaptureFixture) -> None:
    async with api.LiveKitAPI(f"http://127.0.0.1:{closed_port()}", KEY, SECRET) as client:
        recorder = CallRecorder(client, ROOM, clock=Clock())
        assert await recorder.start() is False
        assert await recorder.pause("pin") is True  # never connected: nothing can record
    assert recorder.state == "failed"
    assert [r.getMessage() for r in logged(caplog)] == ["recording could not be started"]
    assert_no_caller_data(caplog)


# --- the sensitive gate ---------------------------------------------------------------------------


async def test_the_gate_pauses_for_sensitive_input_only(
    lk: FakeLiveKit, recorder: CallRecorder
) -> None:
    gate = SensitiveGate(recorder)
    await recorder.start()
    assert await gate.listening(False) is True  # recording already: nothing to do
    assert await gate.listening(True, "card_number") is True
    assert recorder.state == "paused"
    assert await gate.listening(True, "expiry") is True  # still paused
    assert await gate.listening(False) is True
    assert state(recorder) == "recording"
    assert await gate.listening(True, "pin") is True
    await recorder.stop()

    assert [m for m, _ in methods(lk)] == [
        "StartRoomCompositeEgress",
        "StopEgress",
        "StartRoomCompositeEgress",
        "StopEgress",
    ]
    assert starts(lk) == [expected_start(1), expected_start(2)]
    assert [s.ended_because for s in recorder.segments] == ["card_number", "pin"]
    assert [g["reason"] for g in recorder.report()["gaps"]] == ["card_number", "pin"]


async def test_the_gate_keeps_a_fast_sequence_in_order(
    lk: FakeLiveKit, recorder: CallRecorder
) -> None:
    gate = SensitiveGate(recorder)
    await recorder.start()
    results = await asyncio.gather(
        gate.listening(True, "card_number"), gate.listening(False), gate.listening(True, "pin")
    )
    assert list(results) == [True, True, True]
    assert recorder.state == "paused"
    assert [m for m, _ in methods(lk)] == [
        "StartRoomCompositeEgress",
        "StopEgress",
        "StartRoomCompositeEgress",
        "StopEgress",
    ]


async def test_the_gate_reports_a_failed_pause_and_does_not_resume_what_it_did_not_pause(
    lk: FakeLiveKit, recorder: CallRecorder
) -> None:
    gate = SensitiveGate(recorder)
    await recorder.start()
    lk.fail("StopEgress", "internal", times=2)
    assert await gate.listening(True, "card_number") is False
    assert await gate.listening(False) is True
    assert recorder.state == "recording"

    await recorder.pause("agent_asked")  # paused by someone else
    await gate.listening(False)
    assert state(recorder) == "paused"
    assert len(starts(lk)) == 1


# --- configuration --------------------------------------------------------------------------------


def test_the_filepath_needs_a_segment_number(lkapi: api.LiveKitAPI) -> None:
    with pytest.raises(ValueError, match="segment"):
        CallRecorder(lkapi, ROOM, filepath="recordings/{room}.ogg")


async def test_egress_placeholders_are_left_for_egress(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    recorder = CallRecorder(lkapi, ROOM, filepath="rec/{time}/{room}-{segment}.ogg")
    await recorder.start()
    [request] = starts(lk)
    assert request.file_outputs[0].filepath == f"rec/{{time}}/{ROOM}-1.ogg"


def test_recording_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEBOT_RECORDING", raising=False)
    monkeypatch.delenv("VOICEBOT_RECORDING_FILEPATH", raising=False)
    settings = Settings(_env_file=None)
    assert (settings.recording, settings.recording_filepath) == ("off", DEFAULT_FILEPATH)
    monkeypatch.setenv("VOICEBOT_RECORDING", "calls")
    monkeypatch.setenv("VOICEBOT_RECORDING_FILEPATH", "r/{room}/{segment}.ogg")
    settings = Settings(_env_file=None)
    assert (settings.recording, settings.recording_filepath) == ("calls", "r/{room}/{segment}.ogg")
