"""The agent desktop and a phone caller's LiveKit room: ``voicebot serve`` for real, driven by
headless Chromium.

1. The vendored livekit-client is served and defines ``LivekitClient.Room``; the desktop does
   not load it until a phone call needs it.
2. LiveKit unreachable (LIVEKIT_URL points at a closed port): accepting a phone call shows the
   agent that the desktop could not join the caller's room, and the desktop goes on working
   (End call, wrap-up, available again).
3. The desktop's side of a room it does get into, with the SDK stood in for by a fake (no
   LiveKit server runs here): joining, the briefing (in the room, unheard), connected once the
   worker grants publishing (the microphone goes on then, not before), the caller's audio
   attached, a room closed by LiveKit, and leaving on End call.

Needs /usr/bin/chromium (the system package), as tests/queues/test_desktop_browser.py does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser import REPO, chromium, needs_chromium, serve
from tests.queues.packets import make_packet
from tests.queues.servers import free_port
from tests.queues.test_desktop_browser import PASSWORD, TOKEN, Desk, DesktopServer

KEY = "browser-test-livekit-key"
SECRET = "browser-test-livekit-secret-0123456789abcdef"
SCRIPT = "/desktop/static/vendor/livekit-client.umd.js"

pytestmark = [pytest.mark.timeout(300), needs_chromium]

# What #audio-status said, in order (the "Joining…" line is on screen only briefly).
STATUS_PROBE = """
window.__audioStatus = [];
document.addEventListener("DOMContentLoaded", () => {
  const node = document.getElementById("audio-status");
  new MutationObserver(() => {
    const text = node.textContent;
    if (window.__audioStatus[window.__audioStatus.length - 1] !== text) {
      window.__audioStatus.push(text);
    }
  }).observe(node, { childList: true, characterData: true, subtree: true });
});
"""

# Just enough of livekit-client for desktop.js, recording what the page asks of it. The page
# uses a window.LivekitClient that is already there instead of loading the vendored script.
FAKE_SDK = """
window.__rooms = [];
class FakeRoom {
  constructor(options) {
    this.options = options;
    this.handlers = {};
    this.canPlaybackAudio = true;
    this.disconnected = false;
    const mic = [];
    this.localParticipant = {
      permissions: { canPublish: false, canSubscribe: true },
      mic,
      setMicrophoneEnabled: async (on) => { mic.push(on); },
    };
    window.__rooms.push(this);
  }
  on(event, handler) { (this.handlers[event] ||= []).push(handler); return this; }
  emit(event, ...args) { for (const handler of this.handlers[event] || []) handler(...args); }
  async connect(url, token) { this.url = url; this.token = token; }
  async disconnect() { this.disconnected = true; this.emit("disconnected", 1); }
  async startAudio() {}
  // what the test does as LiveKit and the worker
  grant() {
    const previous = this.localParticipant.permissions;
    this.localParticipant.permissions = { canPublish: true, canSubscribe: true };
    this.emit("participantPermissionsChanged", previous, this.localParticipant);
  }
  callerAudio() {
    this.emit("trackSubscribed", {
      kind: "audio",
      attach() { const a = document.createElement("audio"); a.dataset.fake = "caller"; return a; },
      detach() { return []; },
    });
  }
}
window.LivekitClient = {
  Room: FakeRoom,
  RoomEvent: {
    TrackSubscribed: "trackSubscribed",
    TrackUnsubscribed: "trackUnsubscribed",
    ParticipantPermissionsChanged: "participantPermissionsChanged",
    AudioPlaybackStatusChanged: "audioPlaybackChanged",
    Reconnecting: "reconnecting",
    Reconnected: "reconnected",
    Disconnected: "disconnected",
  },
  Track: { Kind: { Audio: "audio" } },
  DisconnectReason: { 1: "CLIENT_INITIATED", 5: "ROOM_DELETED" },
};
"""


class LiveKitServer(DesktopServer):
    livekit_port: int


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """The API, queues and desktop (no speech models), with LiveKit credentials whose server
    is a port nothing listens on."""
    closed = free_port()
    settings = {
        "VOICEBOT_API_TOKEN": TOKEN,
        "VOICEBOT_OFFER_TIMEOUT": "30",
        "VOICEBOT_WRAP_UP_SECONDS": "60",
        "LIVEKIT_URL": f"ws://127.0.0.1:{closed}",
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
    }
    unset = ("VOICEBOT_DATABASE_URL", "VOICEBOT_REDIS_URL", "VOICEBOT_LIVEKIT_BROWSER_URL")
    with serve(
        LiveKitServer,
        tmp_path_factory.mktemp("livekit-desktop"),
        REPO,
        settings=settings,
        unset=unset,
        phone=False,
        healthy=("queues",),
        timeout=30,
    ) as running:
        running.livekit_port = closed
        yield running


def statuses(desk: Desk) -> list[str]:
    shown: list[str] = desk.page.evaluate("() => window.__audioStatus")
    return shown


def livekit(desk: Desk) -> dict[str, Any]:
    state: dict[str, Any] = desk.state()["livekit"]
    return state


def sip_call_offered(server: LiveKitServer, desk: Desk) -> dict[str, Any]:
    """A phone caller's handoff, offered to the (available) agent on ``desk``."""
    packet = make_packet("general", channel="sip")
    queued = server.api_json("POST", "/api/handoffs", 201, json=packet.model_dump(mode="json"))
    desk.wait_for(lambda: desk.phase() == "offer", 10)
    assert desk.state()["current"]["livekit_room"] == packet.call_id, desk.describe()
    return {"entry_id": queued["entry_id"], "room": packet.call_id}


def signed_in_desk(server: LiveKitServer, browser: Any, *init_scripts: str) -> Desk:
    agent = server.add_agent({"general": 5, "billing": 5})
    page = browser.new_context().new_page()
    for script in (STATUS_PROBE, *init_scripts):
        page.add_init_script(script)
    desk = Desk(page, server).open()
    desk.wait_for(lambda: desk.visible("#login-view"), 10)
    desk.sign_in(agent["username"], PASSWORD)
    desk.signed_in(agent)
    desk.go_available()
    return desk


def end_and_wrap_up(desk: Desk) -> None:
    assert desk.page.locator("#btn-end").is_enabled(), desk.describe()
    desk.page.locator("#btn-end").click()
    desk.wrap_up("resolved", "phone caller")


def test_the_vendored_sdk_is_served_and_loaded_only_when_needed(server: LiveKitServer) -> None:
    response = httpx.get(f"{server.url}{SCRIPT}", timeout=10)
    assert response.status_code == 200, response.text[:200]
    assert "javascript" in response.headers["content-type"], response.headers
    assert "LivekitClient" in response.text[:1000]
    license_text = httpx.get(f"{server.url}/desktop/static/vendor/livekit-client.LICENSE")
    assert "Apache License" in license_text.text

    with chromium() as browser:
        desk = signed_in_desk(server, browser)
        # A desktop with no phone call does not load the SDK.
        loaded = desk.page.evaluate(
            "() => [typeof window.LivekitClient,"
            " document.querySelectorAll('script[src*=\"livekit-client\"]').length]"
        )
        assert loaded == ["undefined", 0], loaded
        desk.page.add_script_tag(url=SCRIPT)
        sdk = desk.page.evaluate(
            "() => [typeof LivekitClient.Room, typeof LivekitClient.RoomEvent, LivekitClient.version]"
        )
        assert sdk[0] == "function" and sdk[1] == "object", sdk
        assert sdk[2].startswith("2."), sdk
        assert desk.js_errors == [], desk.describe()


def test_livekit_unreachable_is_shown_and_the_desktop_goes_on(server: LiveKitServer) -> None:
    with chromium() as browser:
        desk = signed_in_desk(server, browser)
        call = sip_call_offered(server, desk)
        desk.page.locator("#btn-accept").click()
        desk.wait_for(lambda: desk.phase() == "connected", 10)
        desk.wait_for(lambda: livekit(desk)["status"] == "failed", 60)

        shown = desk.text("#audio-status")
        assert shown.startswith("Could not join the caller's room: "), desk.describe()
        assert desk.page.locator("#audio-status").get_attribute("data-kind") == "error"
        assert statuses(desk)[0] == "Joining the caller's room…", statuses(desk)
        assert livekit(desk)["room"] == call["room"], desk.describe()
        # The SDK was loaded for it, by the page itself.
        assert desk.page.evaluate("() => typeof LivekitClient.Room") == "function"
        assert desk.visible("#btn-audio") and desk.text("#btn-audio") == "Join again"
        assert not desk.page.locator("#btn-mute").is_enabled(), desk.describe()
        assert any("Could not join" in error for error in desk.state()["errors"])

        # The desktop still works: the agent ends the call and wraps up.
        assert desk.text("#pop-heading") == "On call", desk.describe()
        end_and_wrap_up(desk)
        assert livekit(desk)["status"] is None, desk.describe()

        # What Chromium logged is the refused connections to LiveKit, and nothing thrown.
        port = str(server.livekit_port)
        unexpected = [
            error
            for error in desk.js_errors
            if error.startswith("pageerror") or not (port in error or "livekit-client" in error)
        ]
        assert unexpected == [], desk.describe()

    # The API did give the agent a token; it was LiveKit that could not be reached.
    log = server.api_json("GET", "/api/audit", params={"action": "livekit_join"})
    mine = [e for e in log if e["target"] == call["entry_id"]]
    assert [(e["success"], e["detail"]) for e in mine] == [(True, {"room": call["room"]})], log


def test_briefed_first_then_connected_and_left_on_end_call(server: LiveKitServer) -> None:
    with chromium() as browser:
        desk = signed_in_desk(server, browser, FAKE_SDK)
        call = sip_call_offered(server, desk)
        page = desk.page
        page.locator("#btn-accept").click()
        desk.wait_for(lambda: livekit(desk)["status"] == "briefing", 15)

        room = page.evaluate(
            "() => { const r = window.__rooms[0]; return { n: window.__rooms.length, url: r.url,"
            " token: r.token, mic: r.localParticipant.mic }; }"
        )
        assert room["n"] == 1 and room["url"] == f"ws://127.0.0.1:{server.livekit_port}", room
        assert room["token"].count(".") == 2, room  # the JWT from the API
        # Briefed first: in the room, the microphone not even asked for.
        assert room["mic"] == [], room
        assert desk.text("#audio-status").startswith("Briefing…"), desk.describe()
        assert not page.locator("#btn-mute").is_enabled(), desk.describe()
        assert statuses(desk)[:2] == ["Joining the caller's room…", desk.text("#audio-status")]

        page.evaluate("() => window.__rooms[0].callerAudio()")
        assert page.locator("#livekit-audio audio[data-fake=caller]").count() == 1

        page.evaluate("() => window.__rooms[0].grant()")
        desk.wait_for(lambda: livekit(desk)["status"] == "connected", 10)
        assert desk.text("#audio-status").startswith("Connected"), desk.describe()
        assert page.evaluate("() => window.__rooms[0].localParticipant.mic") == [True]
        assert page.locator("#btn-mute").is_enabled(), desk.describe()
        page.locator("#btn-mute").click()
        assert page.evaluate("() => window.__rooms[0].localParticipant.mic") == [True, False]
        assert "muted" in desk.text("#audio-status"), desk.describe()

        # LiveKit closes the room: the agent is told, and may try again.
        page.evaluate("() => window.__rooms[0].emit('disconnected', 5)")
        desk.wait_for(lambda: livekit(desk)["status"] == "disconnected", 10)
        assert desk.text("#audio-status") == (
            "Disconnected from the caller's room: the call has ended."
        ), desk.describe()
        assert desk.text("#btn-audio") == "Join again", desk.describe()
        page.locator("#btn-audio").click()
        desk.wait_for(lambda: page.evaluate("() => window.__rooms.length") == 2, 10)
        desk.wait_for(lambda: livekit(desk)["status"] == "briefing", 10)
        assert page.evaluate("() => window.__rooms[0].disconnected") is True

        # End call leaves the room.
        end_and_wrap_up(desk)
        left = page.evaluate(
            "() => [window.__rooms[1].disconnected, document.querySelectorAll("
            "'#livekit-audio audio').length]"
        )
        assert left == [True, 0], left
        assert livekit(desk) == {
            "status": None,
            "room": None,
            "entryId": None,
            "canPublish": False,
            "message": "",
        }, desk.describe()
        assert desk.js_errors == [], desk.describe()
        # The vendored SDK was not loaded over the fake.
        assert page.locator(f"script[src='{SCRIPT}']").count() == 0
    log = server.api_json("GET", "/api/audit", params={"action": "livekit_join"})
    assert sum(e["target"] == call["entry_id"] and e["success"] for e in log) == 2, log
