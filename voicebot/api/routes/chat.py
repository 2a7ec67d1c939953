"""The web chat: the page at ``/chat``, the snippet a company site embeds
(``/chat/widget.js``) and the conversation over ``/api/chat/ws``.

Wire protocol (docs/channels.md, "Web chat"): JSON text messages only. The browser sends
``start`` (optionally with a signed identity token, a language, or the id and key of a chat to
resume), ``message``, ``choose``, ``typing`` and ``end``; the server sends ``started``,
``bot`` (with buttons), ``typing``, ``queued``, ``agent_joined``, ``agent``, ``system``,
``closed``, ``error`` and, on a resume, ``resumed`` with what the widget missed. A bad message
gets an ``error`` and is dropped; the chat goes on.

The customer needs no account: the socket is open to anyone on the API's own origin (the page
at /chat, framed by the company's site) and refused from other origins, like the softphone's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from starlette.websockets import WebSocketState

from voicebot.api.security import MessageRate, next_text, socket_origin_allowed
from voicebot.channels import relay
from voicebot.channels.conversation import (
    MAX_MESSAGE_CHARS,
    Conversation,
    ConversationError,
)
from voicebot.channels.webchat import ChatHub, Deliver, WebChat
from voicebot.handoff.packet import CallerInfo

logger = logging.getLogger("voicebot.api.chat")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "chat"
# A JSON message around the longest customer message (2000 characters, escaped) and an identity
# token; a larger one gets an error and is dropped (beyond WS_MAX_BYTES uvicorn closes 1009).
MAX_TEXT_MESSAGE = 16_384
CHANNEL = "chat"
_KINDS = ("start", "message", "choose", "typing", "end")

router = APIRouter(tags=["web chat"])


@router.get("/chat", include_in_schema=False)
def chat_page() -> FileResponse:
    """The chat page: full page, or inside the widget's frame (``?embed=1``)."""
    return FileResponse(STATIC_DIR / "chat.html", media_type="text/html")


@router.get("/chat/widget.js", include_in_schema=False)
def chat_widget() -> FileResponse:
    """The snippet a company site loads: a launcher button and the chat in a frame."""
    return FileResponse(
        STATIC_DIR / "widget.js",
        media_type="text/javascript",
        headers={"cache-control": "public, max-age=300"},
    )


def hub_for(app: Any) -> ChatHub:
    """This node's chats (made on first use: the queues are open by then)."""
    hub: ChatHub | None = getattr(app.state, "chat_hub", None)
    if hub is None:
        settings = app.state.settings
        hub = ChatHub(
            queues=app.state.queues,
            resume_seconds=settings.chat_resume_seconds,
            max_chats=settings.chat_max_conversations,
        )
        app.state.chat_hub = hub
    return hub


@router.websocket("/api/chat/ws")
async def chat_socket(websocket: WebSocket) -> None:
    app = websocket.app
    if not socket_origin_allowed(websocket.headers, app.state.settings):
        # The widget's frame is served from here: its socket's Origin is this server's own.
        await websocket.close(code=1008, reason="cross-origin chat connections are refused")
        return
    await websocket.accept()
    if getattr(app.state, "runtime", None) is None:  # `serve --no-phone`: no bot here
        message = "the chat is not available: no bot is loaded on this server"
        await websocket.send_json({"type": "error", "message": message})
        await websocket.close(code=1011)
        return
    outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    sender = asyncio.create_task(_send_all(websocket, outbox), name="chat-sender")
    deliver: Deliver = outbox.put_nowait
    session = _Socket(app, websocket, deliver)
    try:
        await session.run()
    except Exception:
        logger.exception("chat socket failed")
        deliver({"type": "error", "message": "the chat failed; please reload the page"})
    finally:
        session.leave()
        outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sender, timeout=2)
        sender.cancel()
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _send_all(websocket: WebSocket, outbox: asyncio.Queue[dict[str, Any] | None]) -> None:
    while True:
        item = await outbox.get()
        if item is None:
            return
        if item.get("type") == "detached":  # another window took the chat over
            with contextlib.suppress(Exception):
                await websocket.close(code=4409, reason="continued in another window")
            return
        try:
            await websocket.send_text(json.dumps(item))
        except (WebSocketDisconnect, RuntimeError):
            return


class _Socket:
    """One WebSocket of the widget: it starts or resumes a chat and carries its messages."""

    def __init__(self, app: Any, websocket: WebSocket, deliver: Deliver) -> None:
        self.app = app
        self.websocket = websocket
        self.deliver = deliver
        self.hub = hub_for(app)
        self.chat: WebChat | None = None

    def error(self, message: str) -> None:
        self.deliver({"type": "error", "message": message})

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    def leave(self) -> None:
        if self.chat is not None:
            self.hub.detach(self.chat, self.deliver)

    async def run(self) -> None:
        rate = MessageRate()
        while (text := await next_text(self.websocket, rate, self.error, self.close)) is not None:
            if len(text) > MAX_TEXT_MESSAGE:
                self.error(
                    f"messages are at most {MAX_TEXT_MESSAGE} bytes of JSON (and a chat message "
                    f"{MAX_MESSAGE_CHARS} characters); this one was dropped"
                )
                continue
            try:
                payload = json.loads(text)
            except ValueError:
                self.error('messages must be JSON, e.g. {"type": "message", "text": "hello"}')
                continue
            kind = payload.get("type") if isinstance(payload, dict) else None
            if kind not in _KINDS:
                self.error(f"unknown message type {kind!r}; expected one of {', '.join(_KINDS)}")
                continue
            if kind == "start":
                await self.start(payload)
            elif self.chat is None:
                self.error('send {"type": "start"} first')
            else:
                await self.handle(self.chat, kind, payload)

    # -- start or resume -----------------------------------------------------------------------

    async def start(self, payload: dict[str, Any]) -> None:
        if self.chat is not None:
            self.error("this chat has already started")
            return
        resume = payload.get("resume")
        if isinstance(resume, dict):
            chat = self.hub.find(resume.get("id"), resume.get("key"))
            if chat is not None:
                self.chat = chat
                self.hub.attach(chat, self.deliver)
                self.deliver(
                    {
                        "type": "resumed",
                        "conversation_id": chat.id,
                        "resume_key": chat.key,
                        "phase": chat.phase,
                        "agent_name": chat.agent_name,
                        "messages": list(chat.log),
                    }
                )
                return
            # Over, expired, or held by another node: a new chat is better than none.
            self.error("that chat is no longer open here; starting a new one")
        runtime = self.app.state.runtime
        if self.hub.full:
            self.error("too many chats in progress; please try again in a few minutes")
            await self.close(1013, "too many chats")
            return
        customer = self._customer(payload.get("customer"))
        language = payload.get("language")
        try:
            conversation = Conversation(
                runtime,
                channel=CHANNEL,
                customer=customer,
                language=language if isinstance(language, str) and language else None,
            )
        except ConversationError as exc:
            self.error(str(exc))  # an unknown language: the widget may start again
            return
        chat = WebChat(conversation)
        self.chat = chat
        self.hub.add(chat)
        self.hub.attach(chat, self.deliver)
        self.deliver(
            {
                "type": "started",
                "conversation_id": chat.id,
                "resume_key": chat.key,
                "bot": runtime.loaded.definition.bot.name,
            }
        )
        async with chat.lock:
            self.deliver({"type": "typing", "sender": "bot"})
            self.hub.emit_bot(chat, await conversation.start())
            await self.hub.after_turn(chat)
            self.deliver({"type": "typing", "sender": "bot", "active": False})

    def _customer(self, token: object) -> CallerInfo | None:
        """The customer the company's site vouches for with a signed token, else anonymous
        (a refused token is said, and the chat goes on anonymously: it is never trusted)."""
        if token is None or token == "":
            return None
        settings = self.app.state.settings
        secret = settings.chat_identity_secret
        if not isinstance(token, str):
            self.error("'customer' is an identity token (a string); chatting anonymously")
            return None
        if secret is None:
            self.error("identity tokens are not accepted by this server; chatting anonymously")
            return None
        from voicebot.channels.identity import IdentityError, caller_for, verify_identity

        try:
            identity = verify_identity(
                token, secret.get_secret_value(), settings.chat_identity_max_age
            )
        except IdentityError as exc:
            self.error(f"identity token refused ({exc}); chatting anonymously")
            return None
        return caller_for(identity, channel=CHANNEL)

    # -- messages ------------------------------------------------------------------------------

    async def handle(self, chat: WebChat, kind: str, payload: dict[str, Any]) -> None:
        if kind == "end":
            await self.hub.customer_left(chat, reason="customer ended the chat")
            return
        if chat.phase == "closed":
            if kind != "typing":
                self.error("this chat has ended; start a new one to write again")
            return
        if kind == "typing":
            if chat.phase != "bot" and self.hub.queues is not None:
                await relay.typing(self.hub.queues, chat.id, "customer")
            return
        field = "text" if kind == "message" else "value"
        value = payload.get(field)
        if not isinstance(value, str):
            self.error(f"a {kind!r} message needs {field!r} as text")
            return
        if chat.phase == "bot":
            await self._to_bot(chat, kind, value)
        elif kind == "choose":
            self.error("the buttons were for the bot; write to the agent instead")
        else:
            await self._to_agent(chat, value)

    async def _to_bot(self, chat: WebChat, kind: str, value: str) -> None:
        async with chat.lock:
            conversation = chat.conversation
            try:
                if kind == "choose":
                    # checked before anything is shown: a stale button is an error, not a line
                    label = next((b.label for b in conversation.buttons if b.value == value), None)
                    if label is None:
                        await conversation.choose(value)  # raises, saying what is on offer
                    self.hub.emit(chat, {"type": "customer", "text": label}, keep=True)
                    self.deliver({"type": "typing", "sender": "bot"})
                    messages = await conversation.choose(value)
                else:
                    text = value.strip()
                    if len(value) <= MAX_MESSAGE_CHARS and text:
                        self.hub.emit(chat, {"type": "customer", "text": text}, keep=True)
                        self.deliver({"type": "typing", "sender": "bot"})
                    messages = await conversation.send(value)
            except ConversationError as exc:
                self.error(str(exc))
                return
            self.hub.emit_bot(chat, messages)
            await self.hub.after_turn(chat)
            # the turn is over: the indicator goes off (and a client knows all lines are in)
            self.deliver({"type": "typing", "sender": "bot", "active": False})

    async def _to_agent(self, chat: WebChat, text: str) -> None:
        queues = self.hub.queues
        assert queues is not None  # a chat is only queued where the queues run
        try:
            await relay.post(queues, chat.id, "customer", text)
        except relay.RelayError as exc:
            self.error(str(exc))
            return
        self.hub.emit(chat, {"type": "customer", "text": text.strip()}, keep=True)


def mount_static(app: Any) -> None:
    from fastapi.staticfiles import StaticFiles

    app.mount("/chat/static", StaticFiles(directory=STATIC_DIR), name="chat-static")
