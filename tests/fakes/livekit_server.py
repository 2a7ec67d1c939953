"""A fake of LiveKit's server API (Twirp over HTTP) on loopback, for tests with the real client.

``livekit-api``'s ``LiveKitAPI`` talks to it exactly as it talks to LiveKit: protobuf POSTs to
``/twirp/livekit.<Service>/<Method>`` with a ``Bearer`` JWT. The fake runs in a background
thread, so the code under test can run its own asyncio loop in the same process::

    with FakeLiveKit(api_key="devkey", api_secret=SECRET) as lk:
        async with api.LiveKitAPI(lk.url, "devkey", SECRET) as client:
            ...
        assert lk.calls("CreateSIPInboundTrunk")[0].trunk.numbers == ["+442079460000"]

What it copies from livekit-server and livekit/protocol (read from their sources, not observed
on a live server):

- authentication: a token that does not verify is refused by the HTTP middleware with 401 and
  a plain-text body (the client then sees ``ServerError(code="unknown", status=401)``); a valid
  token without the grant a method needs gets Twirp ``unauthenticated`` / "permissions denied".
  ``auth_failure_body="twirp"`` answers bad tokens with a Twirp JSON body instead;
- the grants each method checks (``sip.admin``, ``sip.call``, ``video.roomCreate``, ``roomList``,
  ``roomAdmin`` for the request's room, ``roomRecord``);
- SIP state: inbound trunks (``ST_...``) and dispatch rules (``SDR_...``) with the server's list
  filters (a number or trunk filter also returns catch-all items), update actions (``replace``
  and field ``update`` with ``ListUpdate``), validation and conflict errors;
- Twirp errors: ``{"code": ..., "msg": ..., "meta": {...}}`` with the HTTP status of the code.

Every request is recorded (:attr:`FakeLiveKit.requests`), and :meth:`FakeLiveKit.fail` scripts a
Twirp error for a method.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeVar, overload
from urllib.parse import urlsplit

import jwt
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from livekit.protocol import agent_dispatch as proto_dispatch
from livekit.protocol import egress as proto_egress
from livekit.protocol import models as proto_models
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip

Claims = dict[str, Any]
M = TypeVar("M", bound=Message)

# Twirp's error codes and the HTTP status each is sent with (twirp spec, "Error codes").
TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

# livekit-server refuses to start with a shorter secret; PyJWT also warns below 32 bytes.
MIN_SECRET_LENGTH = 32

_METHODS: dict[str, MethodDescriptor] = {
    f"{service.full_name}/{method.name}": method
    for module in (proto_sip, proto_room, proto_egress, proto_dispatch)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
}

_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# The attribute livekit-server reads to find a participant's SIP call (livekit.AttrSIPCallID).
ATTR_SIP_CALL_ID = "sip.callID"


def new_id(prefix: str) -> str:
    """An id shaped like LiveKit's (``ST_``, ``SDR_``, ``RM_``, ...: a prefix and 12 characters)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


class TwirpError(Exception):
    """A Twirp error reply; raised by handlers, or scripted with :meth:`FakeLiveKit.fail`."""

    def __init__(
        self,
        code: str,
        msg: str,
        *,
        meta: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {msg}")
        if code not in TWIRP_STATUS:
            raise ValueError(f"not a Twirp error code: {code!r}")
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})
        self.status = status if status is not None else TWIRP_STATUS[code]

    def body(self) -> bytes:
        payload: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:  # twirp-go omits an empty meta
            payload["meta"] = self.meta
        return json.dumps(payload).encode()


class _AuthRejected(Exception):
    """A token refused by livekit-server's auth middleware, before any Twirp handler runs."""


def _permission_denied() -> TwirpError:
    return TwirpError("unauthenticated", "permissions denied")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, whatever its outcome."""

    service: str  # "SIP", "RoomService", "Egress", "AgentDispatchService"
    method: str
    message: Message | None  # the decoded request; None when the route or body was bad
    status: int  # the HTTP status of the reply
    error_code: str | None  # the Twirp code of an error reply; "" for a plain-text 401
    claims: Claims | None  # the verified token's claims; None without a valid token
    headers: dict[str, str] = field(repr=False)

    @property
    def is_write(self) -> bool:
        """Whether the call asks LiveKit to change something (anything but List*/Get*)."""
        return not self.method.startswith(("List", "Get"))

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _ScriptedFailure:
    error: TwirpError
    times: int | None  # None: every call


@dataclass
class _Reply:
    status: int
    content_type: str
    body: bytes
    error_code: str | None = None


def _copy(message: M) -> M:
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate


def _now_ms() -> int:
    return int(time.time() * 1000)


_NUMBER = re.compile(r"^\+?[\d\- ()]+$")


def normalize_number(number: str) -> str:
    """livekit/protocol's NormalizeNumber: drop formatting, ensure a leading '+'."""
    if not number or not _NUMBER.match(number):
        return number
    digits = re.sub(r"[ \-()]", "", number)
    return digits if digits.startswith("+") else "+" + digits


def _quote(text: str) -> str:
    """Go's %q for the plain strings LiveKit's messages quote."""
    return json.dumps(text)


def _print_id(item_id: str) -> str:
    return item_id or "<new>"


def _apply_list_update(current: list[str], update: proto_models.ListUpdate) -> list[str]:
    """livekit/protocol's ListUpdate.Validate and applyListUpdate."""
    change = bool(update.set or update.add or update.remove)
    if not update.clear and not change:
        raise TwirpError("invalid_argument", "unsupported list update operation")
    if update.clear and change:
        raise TwirpError("invalid_argument", "cannot clear and change the list at the same time")
    if update.set and (update.add or update.remove):
        raise TwirpError("invalid_argument", "cannot set and change the list at the same time")
    if any(v == "" for v in (*update.set, *update.add, *update.remove)):
        raise TwirpError("invalid_argument", "empty element in the list")
    if update.clear:
        return []
    if update.set:
        return list(update.set)
    result = [v for v in current if v not in update.remove]
    result += [v for v in dict.fromkeys(update.add) if v not in result]
    return result


def _set_list(container: Any, values: list[str]) -> None:
    del container[:]
    container.extend(values)


def _validate_inbound_trunk(trunk: proto_sip.SIPInboundTrunkInfo) -> None:
    if not (trunk.auth_username or trunk.auth_password or trunk.allowed_addresses or trunk.numbers):
        raise TwirpError(
            "invalid_argument",
            "for security, one of the fields must be set: AuthUsername+AuthPassword, "
            "AllowedAddresses or Numbers",
        )


def _video(claims: Claims | None) -> dict[str, Any]:
    return dict((claims or {}).get("video") or {})


def _sip(claims: Claims | None) -> dict[str, Any]:
    return dict((claims or {}).get("sip") or {})


def _room_admin(claims: Claims | None, room: str) -> bool:
    video = _video(claims)
    return bool(video.get("roomAdmin")) and video.get("room", "") == room


def _request_room(message: Message) -> str:
    for name in ("room", "room_name"):
        if name in message.DESCRIPTOR.fields_by_name:
            return str(getattr(message, name))
    return ""


def _grants_ok(service: str, method: str, claims: Claims | None, message: Message) -> bool:
    """The permission check livekit-server makes for each method (pkg/service/*.go)."""
    video, sip = _video(claims), _sip(claims)
    if service == "SIP":
        if method == "CreateSIPParticipant":
            return bool(sip.get("call"))
        if method == "TransferSIPParticipant":
            return bool(sip.get("call")) and _room_admin(claims, _request_room(message))
        return bool(sip.get("admin"))
    if service == "RoomService":
        if method in ("CreateRoom", "DeleteRoom"):
            return bool(video.get("roomCreate"))
        if method == "ListRooms":
            return bool(video.get("roomList"))
        return _room_admin(claims, _request_room(message))
    if service == "Egress":
        return bool(video.get("roomRecord"))
    if service == "AgentDispatchService":
        return _room_admin(claims, _request_room(message))
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLiveKit


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._serve(self)

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # test output stays clean; the fake records requests instead


class FakeLiveKit:
    """LiveKit's Twirp API on ``127.0.0.1``: SIP, rooms, participants, egress, agent dispatch."""

    def __init__(
        self,
        api_key: str = "devkey",
        api_secret: str = "fake-livekit-secret-0123456789abcdef",
        *,
        auth_failure_body: Literal["text", "twirp"] = "text",
    ) -> None:
        if len(api_secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"LiveKit API secrets are at least {MIN_SECRET_LENGTH} characters")
        self.api_key = api_key
        self.api_secret = api_secret
        self.auth_failure_body = auth_failure_body
        # What TransferSIPParticipant answers on success. livekit-server returns an empty
        # message (google.protobuf.Empty), which the client reads as status STS_TRANSFER_ONGOING.
        self.transfer_response = proto_sip.TransferSIPParticipantResponse()
        self.server_errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._failures: dict[str, list[_ScriptedFailure]] = {}
        self._inbound: dict[str, proto_sip.SIPInboundTrunkInfo] = {}
        self._outbound: dict[str, proto_sip.SIPOutboundTrunkInfo] = {}
        self._rules: dict[str, proto_sip.SIPDispatchRuleInfo] = {}
        self._rooms: dict[str, proto_models.Room] = {}
        self._participants: dict[str, dict[str, proto_models.ParticipantInfo]] = {}
        self._egress: dict[str, proto_egress.EgressInfo] = {}
        self._dispatches: dict[str, proto_dispatch.AgentDispatch] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeLiveKit:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeLiveKit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeLiveKit is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- what tests look at -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @overload
    def calls(self, method: str) -> list[Message]: ...
    @overload
    def calls(self, method: str, kind: type[M]) -> list[M]: ...

    def calls(self, method: str, kind: type[Message] = Message) -> list[Any]:
        """The decoded requests of every call to ``method`` (e.g. "CreateSIPInboundTrunk").

        ``kind`` (the request's message class) only types the result; it is checked.
        """
        found = [r.message for r in self.requests if r.method == method and r.message is not None]
        for message in found:
            if not isinstance(message, kind):
                raise TypeError(f"{method} takes {type(message).__name__}, not {kind.__name__}")
        return found

    def writes(self) -> list[RecordedRequest]:
        """Every request that asked for a change, accepted or not."""
        return [r for r in self.requests if r.is_write]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def fail(
        self,
        method: str,
        code: str = "internal",
        msg: str = "scripted failure",
        *,
        meta: dict[str, str] | None = None,
        status: int | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next ``times`` calls to ``method`` (None: all) with this Twirp error.

        The call is still authenticated and checked for grants first, as LiveKit would.
        """
        error = TwirpError(code, msg, meta=meta, status=status)
        with self._lock:
            self._failures.setdefault(method, []).append(_ScriptedFailure(error, times))

    @property
    def inbound_trunks(self) -> list[proto_sip.SIPInboundTrunkInfo]:
        with self._lock:
            return [_copy(t) for t in self._inbound.values()]

    @property
    def outbound_trunks(self) -> list[proto_sip.SIPOutboundTrunkInfo]:
        with self._lock:
            return [_copy(t) for t in self._outbound.values()]

    @property
    def dispatch_rules(self) -> list[proto_sip.SIPDispatchRuleInfo]:
        with self._lock:
            return [_copy(r) for r in self._rules.values()]

    @property
    def rooms(self) -> list[proto_models.Room]:
        with self._lock:
            return [_copy(r) for r in self._rooms.values()]

    def participants(self, room: str) -> list[proto_models.ParticipantInfo]:
        with self._lock:
            return [_copy(p) for p in self._participants.get(room, {}).values()]

    @property
    def egresses(self) -> list[proto_egress.EgressInfo]:
        with self._lock:
            return [_copy(e) for e in self._egress.values()]

    # --- seeding state (not recorded, not validated) ------------------------------------------

    def add_inbound_trunk(self, trunk: proto_sip.SIPInboundTrunkInfo) -> str:
        stored = _copy(trunk)
        stored.sip_trunk_id = stored.sip_trunk_id or new_id("ST_")
        with self._lock:
            self._inbound[stored.sip_trunk_id] = stored
        return stored.sip_trunk_id

    def add_outbound_trunk(self, trunk: proto_sip.SIPOutboundTrunkInfo) -> str:
        stored = _copy(trunk)
        stored.sip_trunk_id = stored.sip_trunk_id or new_id("ST_")
        with self._lock:
            self._outbound[stored.sip_trunk_id] = stored
        return stored.sip_trunk_id

    def add_dispatch_rule(self, rule: proto_sip.SIPDispatchRuleInfo) -> str:
        stored = _copy(rule)
        stored.sip_dispatch_rule_id = stored.sip_dispatch_rule_id or new_id("SDR_")
        with self._lock:
            self._rules[stored.sip_dispatch_rule_id] = stored
        return stored.sip_dispatch_rule_id

    def add_room(self, name: str, *, metadata: str = "") -> proto_models.Room:
        with self._lock:
            if name not in self._rooms:
                self._rooms[name] = proto_models.Room(
                    sid=new_id("RM_"),
                    name=name,
                    metadata=metadata,
                    creation_time=int(time.time()),
                    creation_time_ms=_now_ms(),
                )
                self._participants[name] = {}
            return _copy(self._rooms[name])

    def add_participant(
        self,
        room: str,
        identity: str,
        *,
        kind: proto_models.ParticipantInfo.Kind = proto_models.ParticipantInfo.STANDARD,
        name: str = "",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
    ) -> proto_models.ParticipantInfo:
        self.add_room(room)
        participant = proto_models.ParticipantInfo(
            sid=new_id("PA_"),
            identity=identity,
            name=name,
            metadata=metadata,
            kind=kind,
            attributes=attributes or {},
            state=proto_models.ParticipantInfo.ACTIVE,
            joined_at=int(time.time()),
            joined_at_ms=_now_ms(),
        )
        with self._lock:
            self._participants[room][identity] = participant
            self._rooms[room].num_participants = len(self._participants[room])
        return _copy(participant)

    def add_sip_caller(
        self, room: str, number: str, *, identity: str | None = None, trunk_id: str = ""
    ) -> proto_models.ParticipantInfo:
        """A caller that came in over SIP, as LiveKit's SIP service puts it in the room."""
        return self.add_participant(
            room,
            identity or f"sip_{number}",
            kind=proto_models.ParticipantInfo.SIP,
            name=f"Phone {number}",
            attributes={
                ATTR_SIP_CALL_ID: new_id("SCL_"),
                "sip.phoneNumber": number,
                "sip.trunkID": trunk_id,
                "sip.callStatus": "active",
            },
        )

    def end_egress(
        self,
        egress_id: str,
        status: proto_egress.EgressStatus = proto_egress.EGRESS_FAILED,
        *,
        error: str = "",
    ) -> None:
        """An egress ending on its own, as the egress service reports it (a failure, a limit
        reached, the room closing); StopEgress then answers failed_precondition."""
        with self._lock:
            info = self._egress[egress_id]
            info.status = status
            info.error = error
            info.ended_at = info.updated_at = time.time_ns()

    # --- HTTP -----------------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        service, method, message, claims = "", "", None, None
        try:
            service, method, message, claims, reply = self._answer(
                handler.command, urlsplit(handler.path).path, headers, body
            )
        except Exception as exc:  # a bug in the fake: answer like a crashed server, and remember
            self.server_errors.append(exc)
            error = TwirpError("internal", f"FakeLiveKit crashed: {exc!r}")
            reply = _Reply(error.status, "application/json", error.body(), error.code)
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    service=service.removeprefix("livekit."),
                    method=method,
                    message=message,
                    status=reply.status,
                    error_code=reply.error_code,
                    claims=claims,
                    headers=headers,
                )
            )
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def _answer(
        self, verb: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[str, str, Message | None, Claims | None, _Reply]:
        route = path.removeprefix("/twirp/")
        service, _, method = route.partition("/")
        descriptor = _METHODS.get(route)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = content_type == "application/json"
        message = self._decode(descriptor, body, as_json) if descriptor is not None else None

        # livekit-server's auth middleware runs before Twirp routing.
        try:
            claims = self._authenticate(headers.get("authorization"))
        except _AuthRejected as exc:
            return service, method, message, None, self._auth_failure(str(exc))

        if not path.startswith("/twirp/"):  # e.g. /settings/regions, which only Cloud serves
            return "", path, None, claims, _Reply(404, "text/plain", b"404 page not found\n", "")
        try:
            if verb != "POST":
                raise TwirpError(
                    "bad_route",
                    f'unsupported method "{verb}" (only POST is allowed)',
                    meta={"twirp_invalid_route": f"{verb} {path}"},
                )
            if descriptor is None:
                raise TwirpError(
                    "bad_route",
                    f"no handler for path {_quote(path)}",
                    meta={"twirp_invalid_route": f"{verb} {path}"},
                )
            if content_type not in ("application/protobuf", "application/json"):
                raise TwirpError(
                    "bad_route",
                    f"unexpected Content-Type: {_quote(headers.get('content-type', ''))}",
                    meta={"twirp_invalid_route": f"{verb} {path}"},
                )
            if message is None:
                raise TwirpError("malformed", "the request body could not be decoded")
            short_service = service.removeprefix("livekit.")
            if not _grants_ok(short_service, method, claims, message):
                raise _permission_denied()
            self._scripted_failure(method)
            handle: Callable[[Any], Message] | None = getattr(
                self, f"_h_{short_service}_{method}", None
            )
            if handle is None:
                raise TwirpError("unimplemented", f"FakeLiveKit does not implement {route}")
            with self._lock:
                result = handle(message)
        except TwirpError as error:
            reply = _Reply(error.status, "application/json", error.body(), error.code)
            return service, method, message, claims, reply

        if descriptor.output_type.full_name != result.DESCRIPTOR.full_name:
            raise TypeError(f"{route} must answer {descriptor.output_type.full_name}")
        if as_json:
            text = json_format.MessageToJson(
                result, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
            return service, method, message, claims, _Reply(200, "application/json", text.encode())
        reply = _Reply(200, "application/protobuf", result.SerializeToString())
        return service, method, message, claims, reply

    @staticmethod
    def _decode(descriptor: MethodDescriptor, body: bytes, as_json: bool) -> Message | None:
        message = message_factory.GetMessageClass(descriptor.input_type)()
        try:
            if as_json:
                json_format.Parse(body.decode() or "{}", message, ignore_unknown_fields=True)
            else:
                message.ParseFromString(body)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError):
            return None
        return message

    def _authenticate(self, header: str | None) -> Claims | None:
        """livekit-server's APIKeyAuthMiddleware (pkg/service/auth.go)."""
        if not header:
            return None  # no grants: every method then answers "permissions denied"
        if not header.startswith("Bearer "):
            raise _AuthRejected("invalid authorization header. Must start with Bearer ")
        token = header.removeprefix("Bearer ")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _AuthRejected("invalid authorization token") from None
        key = str(unverified.get("iss", ""))
        if key != self.api_key:
            raise _AuthRejected(f"invalid API key: {key}")
        try:
            claims: Claims = jwt.decode(
                token,
                self.api_secret,
                algorithms=["HS256"],
                issuer=self.api_key,
                leeway=60,  # go-jose's default leeway
                options={"require": ["exp"]},
            )
        except jwt.InvalidSignatureError:
            reason = "go-jose/go-jose: error in cryptographic primitive"
        except jwt.ExpiredSignatureError:
            reason = "go-jose/go-jose/jwt: validation failed, token is expired (exp)"
        except jwt.PyJWTError as exc:
            reason = str(exc)
        else:
            return claims
        raise _AuthRejected(f"invalid token: {token}, error: {reason}")

    def _auth_failure(self, message: str) -> _Reply:
        if self.auth_failure_body == "twirp":
            error = TwirpError("unauthenticated", message)
            return _Reply(401, "application/json", error.body(), error.code)
        return _Reply(401, "text/plain; charset=utf-8", message.encode(), "")

    def _scripted_failure(self, method: str) -> None:
        with self._lock:
            queue = self._failures.get(method)
            if not queue:
                return
            failure = queue[0]
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
        raise failure.error

    # --- SIP: inbound trunks -------------------------------------------------------------------

    def _check_trunk_conflicts(self, trunks: list[proto_sip.SIPInboundTrunkInfo]) -> None:
        """livekit/protocol's sip.ValidateTrunksIter."""
        by_number: dict[str, dict[str, proto_sip.SIPInboundTrunkInfo]] = {}
        for trunk in trunks:
            for number in list(trunk.numbers) or [""]:
                by_allowed = by_number.setdefault(number, {})
                allowed_numbers = [normalize_number(n) for n in trunk.allowed_numbers] or [""]
                for allowed in allowed_numbers:
                    other = by_allowed.get(allowed)
                    if other is not None:
                        numbers = (
                            "[" + " ".join(_quote(n) for n in trunk.numbers) + "]"
                            if trunk.numbers
                            else "<any>"
                        )
                        ids = f"{_quote(_print_id(trunk.sip_trunk_id))} and "
                        ids += _quote(_print_id(other.sip_trunk_id))
                        detail = (
                            f"and AllowedNumber {_quote(allowed)}"
                            if allowed
                            else "without AllowedNumbers set"
                        )
                        raise TwirpError(
                            "invalid_argument",
                            f"Conflicting inbound SIP Trunks: {ids}, using the same number(s) "
                            f"{numbers} {detail}",
                        )
                    by_allowed[allowed] = trunk

    def _h_SIP_ListSIPInboundTrunk(
        self, req: proto_sip.ListSIPInboundTrunkRequest
    ) -> proto_sip.ListSIPInboundTrunkResponse:
        items = _filter_ids(
            list(self._inbound.values()),
            list(req.trunk_ids),
            "sip_trunk_id",
            proto_sip.SIPInboundTrunkInfo,
        )
        numbers = list(req.numbers)
        wanted = {normalize_number(n) for n in numbers}

        def keep(t: proto_sip.SIPInboundTrunkInfo) -> bool:
            if not t.sip_trunk_id:
                return True  # the placeholder of a missing id
            if numbers and t.numbers:
                return any(n in numbers or normalize_number(n) in wanted for n in t.numbers)
            return True

        items = _paginate([t for t in items if keep(t)], req, "sip_trunk_id")
        return proto_sip.ListSIPInboundTrunkResponse(items=items)

    def _h_SIP_CreateSIPInboundTrunk(
        self, req: proto_sip.CreateSIPInboundTrunkRequest
    ) -> proto_sip.SIPInboundTrunkInfo:
        if not req.HasField("trunk"):
            raise TwirpError("invalid_argument", "missing trunk")
        trunk = _copy(req.trunk)
        if trunk.sip_trunk_id:
            raise TwirpError("invalid_argument", "trunk id must not be set")
        _validate_inbound_trunk(trunk)
        self._check_trunk_conflicts([*self._inbound.values(), trunk])
        trunk.sip_trunk_id = new_id("ST_")
        trunk.created_at.FromMilliseconds(_now_ms())
        trunk.updated_at.FromMilliseconds(_now_ms())
        self._inbound[trunk.sip_trunk_id] = trunk
        return _copy(trunk)

    def _h_SIP_UpdateSIPInboundTrunk(
        self, req: proto_sip.UpdateSIPInboundTrunkRequest
    ) -> proto_sip.SIPInboundTrunkInfo:
        if not req.sip_trunk_id:
            raise TwirpError("invalid_argument", "trunk id must be set")
        action = req.WhichOneof("action")
        if action is None:
            raise TwirpError("invalid_argument", "missing or unsupported update action")
        current = self._inbound.get(req.sip_trunk_id)
        if current is None:
            raise TwirpError("not_found", "requested sip trunk does not exist")
        if action == "replace":
            if req.replace.sip_trunk_id not in ("", req.sip_trunk_id):
                raise TwirpError(
                    "invalid_argument",
                    "trunk id in the info must be empty or match the id in the update",
                )
            updated = _copy(req.replace)
            updated.sip_trunk_id = req.sip_trunk_id
            updated.created_at.CopyFrom(current.created_at)
        else:
            updated = _copy(current)
            diff = req.update
            for name in ("numbers", "allowed_addresses", "allowed_numbers"):
                if diff.HasField(name):
                    values = _apply_list_update(list(getattr(updated, name)), getattr(diff, name))
                    _set_list(getattr(updated, name), values)
            for name in ("auth_username", "auth_password", "auth_realm", "name", "metadata"):
                if diff.HasField(name):
                    setattr(updated, name, getattr(diff, name))
            if diff.HasField("media_encryption"):
                updated.media_encryption = diff.media_encryption
            if diff.HasField("media"):
                updated.media.CopyFrom(diff.media)
        _validate_inbound_trunk(updated)
        others = [t for t in self._inbound.values() if t.sip_trunk_id != req.sip_trunk_id]
        self._check_trunk_conflicts([*others, updated])
        updated.updated_at.FromMilliseconds(_now_ms())
        self._inbound[req.sip_trunk_id] = updated
        return _copy(updated)

    def _h_SIP_GetSIPInboundTrunk(
        self, req: proto_sip.GetSIPInboundTrunkRequest
    ) -> proto_sip.GetSIPInboundTrunkResponse:
        if not req.sip_trunk_id:
            raise TwirpError("invalid_argument", "trunk ID is required")
        trunk = self._inbound.get(req.sip_trunk_id)
        if trunk is None:
            raise TwirpError("not_found", "requested sip trunk does not exist")
        return proto_sip.GetSIPInboundTrunkResponse(trunk=trunk)

    def _h_SIP_DeleteSIPTrunk(self, req: proto_sip.DeleteSIPTrunkRequest) -> proto_sip.SIPTrunkInfo:
        if not req.sip_trunk_id:
            raise TwirpError("invalid_argument", "trunk ID is required")
        inbound = self._inbound.pop(req.sip_trunk_id, None)
        outbound = self._outbound.pop(req.sip_trunk_id, None)
        if inbound is None and outbound is None:
            raise TwirpError("not_found", "requested sip trunk does not exist")
        return proto_sip.SIPTrunkInfo(sip_trunk_id=req.sip_trunk_id)

    # --- SIP: outbound trunks ------------------------------------------------------------------

    def _h_SIP_CreateSIPOutboundTrunk(
        self, req: proto_sip.CreateSIPOutboundTrunkRequest
    ) -> proto_sip.SIPOutboundTrunkInfo:
        if not req.HasField("trunk"):
            raise TwirpError("invalid_argument", "missing trunk")
        trunk = _copy(req.trunk)
        if trunk.sip_trunk_id:
            raise TwirpError("invalid_argument", "trunk id must not be set")
        if not trunk.numbers:
            raise TwirpError("invalid_argument", "no trunk numbers specified")
        if not trunk.address:
            raise TwirpError("invalid_argument", "no outbound address specified")
        trunk.sip_trunk_id = new_id("ST_")
        self._outbound[trunk.sip_trunk_id] = trunk
        return _copy(trunk)

    def _h_SIP_ListSIPOutboundTrunk(
        self, req: proto_sip.ListSIPOutboundTrunkRequest
    ) -> proto_sip.ListSIPOutboundTrunkResponse:
        items = _filter_ids(
            list(self._outbound.values()),
            list(req.trunk_ids),
            "sip_trunk_id",
            proto_sip.SIPOutboundTrunkInfo,
        )
        numbers = list(req.numbers)
        items = [
            t
            for t in items
            if not (numbers and t.numbers and not any(n in numbers for n in t.numbers))
        ]
        items = _paginate(items, req, "sip_trunk_id")
        return proto_sip.ListSIPOutboundTrunkResponse(items=items)

    def _h_SIP_UpdateSIPOutboundTrunk(
        self, req: proto_sip.UpdateSIPOutboundTrunkRequest
    ) -> proto_sip.SIPOutboundTrunkInfo:
        """livekit-server's UpdateSIPOutboundTrunk: a whole replacement or the given fields."""
        if not req.sip_trunk_id:
            raise TwirpError("invalid_argument", "trunk id must be set")
        action = req.WhichOneof("action")
        if action is None:
            raise TwirpError("invalid_argument", "missing or unsupported update action")
        current = self._outbound.get(req.sip_trunk_id)
        if current is None:
            raise TwirpError("not_found", "requested sip trunk does not exist")
        if action == "replace":
            updated = _copy(req.replace)
            updated.sip_trunk_id = req.sip_trunk_id
        else:
            updated = _copy(current)
            diff = req.update
            if diff.HasField("numbers"):
                _set_list(updated.numbers, _apply_list_update(list(updated.numbers), diff.numbers))
            for name in ("address", "auth_username", "auth_password", "name", "metadata"):
                if diff.HasField(name):
                    setattr(updated, name, getattr(diff, name))
        if not updated.numbers:
            raise TwirpError("invalid_argument", "no trunk numbers specified")
        if not updated.address:
            raise TwirpError("invalid_argument", "no outbound address specified")
        self._outbound[req.sip_trunk_id] = updated
        return _copy(updated)

    # --- SIP: dispatch rules --------------------------------------------------------------------

    def _check_rule_conflicts(self, rules: list[proto_sip.SIPDispatchRuleInfo]) -> None:
        """livekit/protocol's sip.DispatchRuleValidator."""
        seen: dict[tuple[str, str, str, str], proto_sip.SIPDispatchRuleInfo] = {}
        for rule in rules:
            kind = rule.rule.WhichOneof("rule")
            if kind is None:
                raise TwirpError("internal", "Unsupported SIP Dispatch Rule: <nil>")
            pin = getattr(rule.rule, kind).pin
            for trunk in list(rule.trunk_ids) or [""]:
                for inbound in list(rule.inbound_numbers) or [""]:
                    for number in list(rule.numbers) or [""]:
                        key = (pin, trunk, normalize_number(inbound), normalize_number(number))
                        other = seen.get(key)
                        if other is not None:
                            raise TwirpError(
                                "invalid_argument",
                                "Dispatch rule for the same trunk, inbound number, number, and "
                                "PIN combination already exists in dispatch rule "
                                f"{_quote(_print_id(other.sip_dispatch_rule_id))} "
                                f"{_quote(other.name or '<blank name>')}",
                            )
                        seen[key] = rule

    def _h_SIP_ListSIPDispatchRule(
        self, req: proto_sip.ListSIPDispatchRuleRequest
    ) -> proto_sip.ListSIPDispatchRuleResponse:
        items = _filter_ids(
            list(self._rules.values()),
            list(req.dispatch_rule_ids),
            "sip_dispatch_rule_id",
            proto_sip.SIPDispatchRuleInfo,
        )
        trunk_ids = list(req.trunk_ids)
        items = [
            r
            for r in items
            if not (trunk_ids and r.trunk_ids and not any(t in trunk_ids for t in r.trunk_ids))
        ]
        items = _paginate(items, req, "sip_dispatch_rule_id")
        return proto_sip.ListSIPDispatchRuleResponse(items=items)

    def _h_SIP_CreateSIPDispatchRule(
        self, req: proto_sip.CreateSIPDispatchRuleRequest
    ) -> proto_sip.SIPDispatchRuleInfo:
        if req.HasField("dispatch_rule"):
            rule = _copy(req.dispatch_rule)
            if rule.sip_dispatch_rule_id:
                raise TwirpError("invalid_argument", "rule id must not be set")
        else:  # the request's own (older) fields, which the server still accepts
            rule = proto_sip.SIPDispatchRuleInfo(
                trunk_ids=req.trunk_ids,
                inbound_numbers=req.inbound_numbers,
                hide_phone_number=req.hide_phone_number,
                name=req.name,
                metadata=req.metadata,
                attributes=req.attributes,
                room_preset=req.room_preset,
            )
            if req.HasField("rule"):
                rule.rule.CopyFrom(req.rule)
            if req.HasField("room_config"):
                rule.room_config.CopyFrom(req.room_config)
        if not rule.HasField("rule"):
            raise TwirpError("invalid_argument", "missing rule")
        self._check_rule_conflicts([*self._rules.values(), rule])
        rule.sip_dispatch_rule_id = new_id("SDR_")
        rule.created_at.FromMilliseconds(_now_ms())
        rule.updated_at.FromMilliseconds(_now_ms())
        self._rules[rule.sip_dispatch_rule_id] = rule
        return _copy(rule)

    def _h_SIP_UpdateSIPDispatchRule(
        self, req: proto_sip.UpdateSIPDispatchRuleRequest
    ) -> proto_sip.SIPDispatchRuleInfo:
        if not req.sip_dispatch_rule_id:
            raise TwirpError("invalid_argument", "rule id must be set")
        action = req.WhichOneof("action")
        if action is None:
            raise TwirpError("invalid_argument", "missing or unsupported update action")
        current = self._rules.get(req.sip_dispatch_rule_id)
        if current is None:
            raise TwirpError("not_found", "requested sip dispatch rule does not exist")
        if action == "replace":
            if req.replace.sip_dispatch_rule_id not in ("", req.sip_dispatch_rule_id):
                raise TwirpError(
                    "invalid_argument",
                    "rule id in the info must be empty or match the id in the update",
                )
            updated = _copy(req.replace)
            updated.sip_dispatch_rule_id = req.sip_dispatch_rule_id
            updated.created_at.CopyFrom(current.created_at)
        else:
            updated = _copy(current)
            diff = req.update
            if diff.HasField("trunk_ids"):
                _set_list(
                    updated.trunk_ids, _apply_list_update(list(updated.trunk_ids), diff.trunk_ids)
                )
            if diff.HasField("rule"):
                updated.rule.CopyFrom(diff.rule)
            for name in ("name", "metadata"):
                if diff.HasField(name):
                    setattr(updated, name, getattr(diff, name))
            if diff.HasField("media_encryption"):
                updated.media_encryption = diff.media_encryption
            for key, value in diff.attributes.items():
                if value:
                    updated.attributes[key] = value
                else:
                    updated.attributes.pop(key, None)
        if not updated.HasField("rule"):
            raise TwirpError("invalid_argument", "missing rule")
        others = [
            r for r in self._rules.values() if r.sip_dispatch_rule_id != req.sip_dispatch_rule_id
        ]
        self._check_rule_conflicts([*others, updated])
        updated.updated_at.FromMilliseconds(_now_ms())
        self._rules[req.sip_dispatch_rule_id] = updated
        return _copy(updated)

    def _h_SIP_DeleteSIPDispatchRule(
        self, req: proto_sip.DeleteSIPDispatchRuleRequest
    ) -> proto_sip.SIPDispatchRuleInfo:
        rule = self._rules.pop(req.sip_dispatch_rule_id, None)
        if rule is None:
            raise TwirpError("not_found", "requested sip dispatch rule does not exist")
        return rule

    # --- SIP: calls -----------------------------------------------------------------------------

    def _h_SIP_CreateSIPParticipant(
        self, req: proto_sip.CreateSIPParticipantRequest
    ) -> proto_sip.SIPParticipantInfo:
        if not req.sip_trunk_id and not req.HasField("trunk"):
            raise TwirpError("invalid_argument", "missing sip trunk id")
        if not req.sip_call_to:
            raise TwirpError("invalid_argument", "missing sip callee number")
        if "@" in req.sip_call_to:
            raise TwirpError(
                "invalid_argument",
                "SipCallTo should be a phone number or SIP user, not a full SIP URI",
            )
        if not req.room_name:
            raise TwirpError("invalid_argument", "missing room name")
        if req.sip_trunk_id and req.sip_trunk_id not in self._outbound:
            raise TwirpError("not_found", "requested sip trunk does not exist")
        identity = req.participant_identity or f"sip_{req.sip_call_to}"
        call_id = new_id("SCL_")
        attributes = {
            ATTR_SIP_CALL_ID: call_id,
            "sip.phoneNumber": req.sip_call_to,
            "sip.trunkID": req.sip_trunk_id,
            "sip.callStatus": "active",
            **req.participant_attributes,
        }
        participant = self.add_participant(
            req.room_name,
            identity,
            kind=proto_models.ParticipantInfo.SIP,
            name=req.participant_name,
            metadata=req.participant_metadata,
            attributes=attributes,
        )
        return proto_sip.SIPParticipantInfo(
            participant_id=participant.sid,
            participant_identity=identity,
            room_name=req.room_name,
            sip_call_id=call_id,
        )

    def _h_SIP_TransferSIPParticipant(
        self, req: proto_sip.TransferSIPParticipantRequest
    ) -> proto_sip.TransferSIPParticipantResponse:
        if not req.room_name:
            raise TwirpError("invalid_argument", "Missing room name")
        if not req.participant_identity:
            raise TwirpError("invalid_argument", "Missing participant identity")
        target = req.transfer_to.removeprefix("<").removesuffix(">")
        if not target:
            raise TwirpError("invalid_argument", "missing transfer to")
        if not target.startswith(("sip:", "tel:")):
            raise TwirpError(
                "invalid_argument", "transfer_to must be a valid SIP or TEL URI (sip: or tel:)"
            )
        participant = self._participant(req.room_name, req.participant_identity)
        if ATTR_SIP_CALL_ID not in participant.attributes:
            raise TwirpError("invalid_argument", "no SIP session associated with participant")
        # The SIP bridge hangs up LiveKit's leg once the provider accepts the REFER.
        del self._participants[req.room_name][req.participant_identity]
        return _copy(self.transfer_response)

    # --- RoomService ----------------------------------------------------------------------------

    def _room(self, name: str) -> proto_models.Room:
        room = self._rooms.get(name)
        if room is None:
            raise TwirpError("not_found", "requested room does not exist")
        return room

    def _participant(self, room: str, identity: str) -> proto_models.ParticipantInfo:
        self._room(room)
        participant = self._participants[room].get(identity)
        if participant is None:
            raise TwirpError("not_found", "participant does not exist")
        return participant

    def _h_RoomService_CreateRoom(self, req: proto_room.CreateRoomRequest) -> proto_models.Room:
        if not req.name:
            raise TwirpError("invalid_argument", "no room name")
        if req.name not in self._rooms:
            self.add_room(req.name, metadata=req.metadata)
            room = self._rooms[req.name]
            room.empty_timeout = req.empty_timeout
            room.departure_timeout = req.departure_timeout
            room.max_participants = req.max_participants
        return _copy(self._rooms[req.name])

    def _h_RoomService_ListRooms(
        self, req: proto_room.ListRoomsRequest
    ) -> proto_room.ListRoomsResponse:
        names = set(req.names)
        rooms = [r for r in self._rooms.values() if not names or r.name in names]
        return proto_room.ListRoomsResponse(rooms=rooms)

    def _h_RoomService_DeleteRoom(
        self, req: proto_room.DeleteRoomRequest
    ) -> proto_room.DeleteRoomResponse:
        self._room(req.room)
        del self._rooms[req.room]
        self._participants.pop(req.room, None)
        return proto_room.DeleteRoomResponse()

    def _h_RoomService_UpdateRoomMetadata(
        self, req: proto_room.UpdateRoomMetadataRequest
    ) -> proto_models.Room:
        room = self._room(req.room)
        room.metadata = req.metadata
        return _copy(room)

    def _h_RoomService_ListParticipants(
        self, req: proto_room.ListParticipantsRequest
    ) -> proto_room.ListParticipantsResponse:
        self._room(req.room)
        return proto_room.ListParticipantsResponse(
            participants=list(self._participants[req.room].values())
        )

    def _h_RoomService_GetParticipant(
        self, req: proto_room.RoomParticipantIdentity
    ) -> proto_models.ParticipantInfo:
        return _copy(self._participant(req.room, req.identity))

    def _h_RoomService_RemoveParticipant(
        self, req: proto_room.RoomParticipantIdentity
    ) -> proto_room.RemoveParticipantResponse:
        self._participant(req.room, req.identity)
        del self._participants[req.room][req.identity]
        self._rooms[req.room].num_participants = len(self._participants[req.room])
        return proto_room.RemoveParticipantResponse()

    def _h_RoomService_UpdateParticipant(
        self, req: proto_room.UpdateParticipantRequest
    ) -> proto_models.ParticipantInfo:
        participant = self._participant(req.room, req.identity)
        if req.metadata:
            participant.metadata = req.metadata
        if req.name:
            participant.name = req.name
        for key, value in req.attributes.items():
            if value:
                participant.attributes[key] = value
            else:  # an empty value deletes the attribute
                participant.attributes.pop(key, None)
        if req.HasField("permission"):
            participant.permission.CopyFrom(req.permission)
        return _copy(participant)

    def _h_RoomService_SendData(
        self, req: proto_room.SendDataRequest
    ) -> proto_room.SendDataResponse:
        self._room(req.room)
        return proto_room.SendDataResponse()

    # --- Egress ---------------------------------------------------------------------------------

    def _start_egress(self, room_name: str) -> proto_egress.EgressInfo:
        room = self._room(room_name)
        info = proto_egress.EgressInfo(
            egress_id=new_id("EG_"),
            room_id=room.sid,
            room_name=room_name,
            status=proto_egress.EGRESS_STARTING,
            started_at=time.time_ns(),
            updated_at=time.time_ns(),
        )
        self._egress[info.egress_id] = info
        return info

    def _h_Egress_StartRoomCompositeEgress(
        self, req: proto_egress.RoomCompositeEgressRequest
    ) -> proto_egress.EgressInfo:
        if not req.room_name:
            raise TwirpError("invalid_argument", "no room name")
        info = self._start_egress(req.room_name)
        info.source_type = proto_egress.EGRESS_SOURCE_TYPE_WEB
        info.room_composite.CopyFrom(req)
        return _copy(info)

    def _h_Egress_StartParticipantEgress(
        self, req: proto_egress.ParticipantEgressRequest
    ) -> proto_egress.EgressInfo:
        if not req.room_name:
            raise TwirpError("invalid_argument", "no room name")
        if not req.identity:
            raise TwirpError("invalid_argument", "identity cannot be empty")
        self._participant(req.room_name, req.identity)
        info = self._start_egress(req.room_name)
        info.source_type = proto_egress.EGRESS_SOURCE_TYPE_SDK
        info.participant.CopyFrom(req)
        return _copy(info)

    def _h_Egress_StopEgress(self, req: proto_egress.StopEgressRequest) -> proto_egress.EgressInfo:
        info = self._egress.get(req.egress_id)
        if info is None:
            raise TwirpError("not_found", "egress does not exist")
        if info.status not in (proto_egress.EGRESS_STARTING, proto_egress.EGRESS_ACTIVE):
            name = proto_egress.EgressStatus.Name(info.status)
            raise TwirpError("failed_precondition", f"egress with status {name} cannot be stopped")
        info.status = proto_egress.EGRESS_ENDING
        info.updated_at = time.time_ns()
        return _copy(info)

    def _h_Egress_ListEgress(
        self, req: proto_egress.ListEgressRequest
    ) -> proto_egress.ListEgressResponse:
        active = (proto_egress.EGRESS_STARTING, proto_egress.EGRESS_ACTIVE)
        items = [
            e
            for e in self._egress.values()
            if (not req.room_name or e.room_name == req.room_name)
            and (not req.egress_id or e.egress_id == req.egress_id)
            and (not req.active or e.status in active)
        ]
        return proto_egress.ListEgressResponse(items=items)

    # --- AgentDispatchService -------------------------------------------------------------------

    def _h_AgentDispatchService_CreateDispatch(
        self, req: proto_dispatch.CreateAgentDispatchRequest
    ) -> proto_dispatch.AgentDispatch:
        if not req.room:
            raise TwirpError("invalid_argument", "no room name")
        self.add_room(req.room)
        dispatch = proto_dispatch.AgentDispatch(
            id=new_id("AD_"), agent_name=req.agent_name, room=req.room, metadata=req.metadata
        )
        self._dispatches[dispatch.id] = dispatch
        return _copy(dispatch)

    def _h_AgentDispatchService_ListDispatch(
        self, req: proto_dispatch.ListAgentDispatchRequest
    ) -> proto_dispatch.ListAgentDispatchResponse:
        items = [
            d
            for d in self._dispatches.values()
            if d.room == req.room and (not req.dispatch_id or d.id == req.dispatch_id)
        ]
        return proto_dispatch.ListAgentDispatchResponse(agent_dispatches=items)

    def _h_AgentDispatchService_DeleteDispatch(
        self, req: proto_dispatch.DeleteAgentDispatchRequest
    ) -> proto_dispatch.AgentDispatch:
        dispatch = self._dispatches.get(req.dispatch_id)
        if dispatch is None or dispatch.room != req.room:
            raise TwirpError("not_found", "dispatch not found")
        del self._dispatches[req.dispatch_id]
        return dispatch


def _filter_ids(items: list[M], ids: list[str], id_field: str, kind: type[M]) -> list[M]:
    """livekit/protocol's filterIDs: the asked ids in order, an empty item for a missing one."""
    if not ids:
        return items
    by_id = {getattr(item, id_field): item for item in items}
    # The server keeps a nil entry for a missing id, which goes on the wire as an empty message.
    return [by_id[i] if i in by_id else kind() for i in ids]


def _paginate(items: list[M], req: Any, id_field: str) -> list[M]:
    """Without ``page`` the server returns everything; with it, ids after ``after_id``."""
    if not req.HasField("page"):
        return items
    after, limit = req.page.after_id, req.page.limit
    ordered = sorted(
        (i for i in items if getattr(i, id_field) > after), key=lambda i: getattr(i, id_field)
    )
    return ordered[:limit] if limit > 0 else ordered
