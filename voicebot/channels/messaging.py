"""The messaging gateway channel: SMS, WhatsApp or any text gateway, plugged in by contract.

voicebot speaks one JSON webhook contract both ways (docs/channels.md, "Messaging gateway"),
so a gateway needs a small adapter on its side and no code in voicebot:

- in: the gateway POSTs each customer message to ``/api/messaging/inbound`` (voicebot/api/
  routes/messaging.py), signed with ``X-Voicebot-Signature`` and ``VOICEBOT_MESSAGING_SECRET``;
- out: voicebot POSTs each reply to ``VOICEBOT_MESSAGING_URL``, signed the same way.

One conversation per customer number (:class:`~voicebot.channels.conversation.Conversation`,
channel ``messaging``: the same flows and engine as a call). SMS has no buttons, so a menu's
choices are written as numbered text and a reply of just the number chooses. After a handoff
the customer's messages go to the agent through voicebot/channels/relay.py, and the agent's
lines (``chat_message`` on the event bus) come back out to the gateway. A conversation nobody
writes in for ``VOICEBOT_MESSAGING_IDLE_HOURS`` ends (handed off: as if the customer left).

Nothing is lost when the gateway is down: every outgoing message is written to a spool file
(``messaging-outbox.jsonl`` in the data directory, flushed) before it is sent, sent in order,
retried with backoff until the gateway takes it, and still there after a restart. Each carries
an ``id``, so a gateway that saw a message whose acknowledgement was lost can drop the repeat.
Inbound message ids already processed are remembered (``messaging-seen.jsonl``), so a gateway
retrying a message it thinks failed does not make the bot answer twice.

Conversations live on the node that receives the customer's messages: with several API nodes,
point the gateway at one of them (or route ``/api/messaging/inbound`` stickily by number).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from voicebot.actions import signing
from voicebot.channels import relay
from voicebot.channels.conversation import (
    MAX_MESSAGE_CHARS,
    BotMessage,
    Button,
    Conversation,
    ConversationError,
)
from voicebot.channels.identity import CUSTOMER_KEY, customer_id, normalise_number
from voicebot.handoff.packet import CallerInfo

if TYPE_CHECKING:
    from voicebot.config import Settings
    from voicebot.handoff.sinks import HandoffSink
    from voicebot.queues.events import Event
    from voicebot.queues.service import QueueService
    from voicebot.runtime.bot import BotRuntime

logger = logging.getLogger("voicebot.channels.messaging")

CHANNEL = "messaging"
OUTBOX = "messaging-outbox.jsonl"
SEEN = "messaging-seen.jsonl"
SEEN_DAYS = 7  # a gateway retries for minutes or hours, not a week
MAX_BODY_BYTES = 16 * 1024
_RETRY_FIRST = 0.5
_RETRY_MAX = 30.0
# A gateway answer that retrying will not change (a number it cannot reach, a malformed
# request): the message is set aside in the .bad file instead of blocking the ones behind it.
_RETRYABLE = frozenset({408, 409, 425, 429})
_CHOICE = re.compile(r"^\s*(\d{1,2}|[*#])\s*[.)]?\s*$")


class MessagingError(ValueError):
    """An inbound message the channel refuses; ``status`` is the HTTP answer for the gateway."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class InboundMessage(BaseModel):
    """What the gateway POSTs for one customer message."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(min_length=1, max_length=200, description="The gateway's message id.")
    from_: str = Field(
        alias="from", min_length=3, max_length=64, description="The customer's number, E.164."
    )
    to: str | None = Field(
        default=None, max_length=64, description="The number or sender id the customer wrote to."
    )
    text: str = Field(max_length=100_000, description="The message, at most 2000 characters.")
    channel: str = Field(
        default="sms", pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="sms, whatsapp, ..."
    )
    at: dt.datetime | None = Field(default=None, description="When the customer sent it.")


# -- the spool of outgoing messages --------------------------------------------------------------


class Outbox:
    """Ordered, durable delivery to the gateway: append to the spool file, send in order,
    retry with backoff, drop a message only when the gateway has taken it (2xx) or refused it
    for good (a 4xx other than 408/409/425/429, kept in the ``.bad`` file)."""

    def __init__(
        self,
        path: Path,
        *,
        url: str | None,
        secret: str,
        timeout: float = 10.0,
        retry_max: float = _RETRY_MAX,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.path = path
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.retry_max = retry_max
        self._client = client or httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self._pending: deque[dict[str, Any]] = deque()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Load what an earlier run left in the spool and start sending."""
        lines = await asyncio.to_thread(self._read)
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                logger.error("unreadable spooled message kept aside")
                await asyncio.to_thread(_append, self.path.with_suffix(".bad"), line)
                continue
            if isinstance(message, dict):
                self._pending.append(message)
        if self._pending:
            logger.info("spooled messages to send", extra={"detail": str(len(self._pending))})
        self._task = asyncio.create_task(self._run(), name="messaging-outbox")
        self._wake.set()

    async def send(self, message: dict[str, Any]) -> None:
        """Keep ``message`` (spool file first) and have it sent."""
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        async with self._lock:
            await asyncio.to_thread(_append, self.path, line)
            self._pending.append(message)
        self._wake.set()

    def _read(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text(encoding="utf-8").splitlines() if line]

    def _rewrite(self) -> None:
        if not self._pending:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as file:
            for message in self._pending:
                file.write(json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n")
            file.flush()
        temporary.replace(self.path)

    async def _run(self) -> None:
        delay = _RETRY_FIRST
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                message = self._pending[0]
                outcome = await self._post(message)
                if outcome == "retry":
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max)
                    continue
                delay = _RETRY_FIRST
                async with self._lock:
                    if self._pending and self._pending[0] is message:
                        self._pending.popleft()
                    if outcome == "refused":
                        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
                        await asyncio.to_thread(_append, self.path.with_suffix(".bad"), line)
                    else:
                        self.delivered += 1
                    await asyncio.to_thread(self._rewrite)

    async def _post(self, message: dict[str, Any]) -> str:
        if not self.url:
            return "retry"  # kept until VOICEBOT_MESSAGING_URL is set (a restart)
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            # signed at each attempt: a message held through an outage gets a fresh timestamp
            signing.HEADER: signing.sign(body, self.secret),
        }
        try:
            response = await self._client.post(
                self.url, content=body, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            logger.warning(
                "messaging gateway unreachable; will retry",
                extra={"message_id": message.get("id"), "detail": type(exc).__name__},
            )
            return "retry"
        if response.is_success:
            return "sent"
        if response.status_code >= 500 or response.status_code in _RETRYABLE:
            logger.warning(
                "messaging gateway failed; will retry",
                extra={"message_id": message.get("id"), "status": response.status_code},
            )
            return "retry"
        logger.error(
            "messaging gateway refused a message; kept in the .bad spool",
            extra={"message_id": message.get("id"), "status": response.status_code},
        )
        return "refused"

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()


# -- inbound message ids already handled ---------------------------------------------------------


class SeenIds:
    """Gateway message ids handled in the last :data:`SEEN_DAYS` days (ids only, no content)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: dict[str, float] = {}

    def load(self) -> None:
        if not self.path.exists():
            return
        horizon = time.time() - SEEN_DAYS * 86400
        for line in self.path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                item = json.loads(line)
                if float(item["t"]) >= horizon:
                    self._seen[str(item["id"])] = float(item["t"])
        # rewritten without the old ones, so the file does not grow for ever
        self.path.write_text(
            "".join(json.dumps({"id": k, "t": v}) + "\n" for k, v in self._seen.items()),
            encoding="utf-8",
        )

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._seen

    def add(self, message_id: str) -> None:
        now = time.time()
        self._seen[message_id] = now
        _append(self.path, json.dumps({"id": message_id, "t": now}))


# -- conversations ---------------------------------------------------------------------------------


@dataclass
class Thread:
    """One customer number's conversation: with the bot, then (after a handoff) an agent."""

    number: str  # E.164
    ours: str | None  # the number or sender id the customer wrote to; replies come from it
    channel: str  # sms, whatsapp, ...
    conversation: Conversation
    last_active: float  # on the channel's clock
    recorded: bool = False
    closed: bool = False
    last_message_id: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def call_id(self) -> str:
        return self.conversation.call_id


class MessagingChannel:
    """Inbound messages to conversations, conversations' replies to the outbox."""

    def __init__(
        self,
        settings: Settings,
        runtime: BotRuntime | None,
        service: QueueService | None,
        *,
        handoffs: HandoffSink | None = None,
        outbox: Outbox | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        secret = settings.messaging_secret.get_secret_value() if settings.messaging_secret else ""
        self.secret = secret
        self.runtime = runtime
        self.service = service
        self.handoffs = handoffs
        self.idle_seconds = settings.messaging_idle_hours * 3600
        # Seconds, for idleness only; replaceable so that a test moves a day on without waiting.
        self.clock = clock
        self.region = runtime.loaded.definition.bot.language if runtime is not None else "en-GB"
        self.outbox = outbox or Outbox(
            settings.data_dir / OUTBOX,
            url=settings.messaging_url,
            secret=secret,
            timeout=settings.messaging_timeout,
        )
        self.seen = SeenIds(settings.data_dir / SEEN)
        self._threads: dict[str, Thread] = {}  # by customer number
        self._by_call: dict[str, Thread] = {}
        # number -> [its lock, how many are using or waiting for it]: dropped at zero, so a
        # number that wrote once does not keep a lock for the life of the server
        self._numbers: dict[str, list[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.seen.load)
        await self.outbox.start()
        if self.service is not None:
            self.service.bus.subscribe(self._on_event)
        self._sweeper = asyncio.create_task(self._sweep(), name="messaging-idle")

    # -- inbound ----------------------------------------------------------------------------

    async def receive(self, message: InboundMessage) -> dict[str, Any]:
        """Handle one inbound message once; a repeat of an id already handled does nothing."""
        number = normalise_number(message.from_, region=self.region)
        if number is None:
            raise MessagingError(
                f"'from' is not a phone number in E.164 (+44...): {_hint(message)}"
            )
        text = message.text.strip()
        if len(message.text) > MAX_MESSAGE_CHARS:
            raise MessagingError(
                f"messages are at most {MAX_MESSAGE_CHARS} characters; this one has "
                f"{len(message.text)} and was not processed",
                status=413,
            )
        if not text:
            raise MessagingError("'text' is empty")
        # One number's messages are handled one at a time, in arrival order.
        async with self._number_lock(number):
            if message.id in self.seen:
                thread = self._threads.get(number)
                return {
                    "duplicate": True,
                    "conversation_id": thread.call_id if thread is not None else None,
                }
            thread = self._threads.get(number)
            if thread is not None and self._over(thread):
                await self._end(thread, "ended")
                thread = None
            started: list[BotMessage] = []
            if thread is None:
                thread, started = await self._open(number, message)
            thread.last_active = self.clock()
            thread.last_message_id = message.id
            async with thread.lock:
                replies = started + await self._customer_said(thread, text)
            # Marked only once handled: a message that failed half-way is processed on retry.
            await asyncio.to_thread(self.seen.add, message.id)
            if replies:
                await self._reply(thread, replies, in_reply_to=message.id)
            if thread.conversation.ended and not thread.recorded:
                await self._record(thread)
            return {
                "duplicate": False,
                "conversation_id": thread.call_id,
                "handed_off": thread.conversation.handed_off is not None,
            }

    def _over(self, thread: Thread) -> bool:
        if thread.closed:
            return True
        if thread.conversation.ended and thread.conversation.handed_off is None:
            return True  # the bot said goodbye: a new message is a new conversation
        return self._idle(thread)

    def _idle(self, thread: Thread) -> bool:
        return self.clock() - thread.last_active > self.idle_seconds

    async def _open(self, number: str, message: InboundMessage) -> tuple[Thread, list[BotMessage]]:
        if self.runtime is None:
            raise MessagingError("no bot is loaded on this server", status=503)
        caller = CallerInfo(
            number=number,
            attributes={
                CUSTOMER_KEY: customer_id(number, region=self.region),
                "messaging_channel": message.channel,
            },
        )
        conversation = Conversation(
            self.runtime, channel=CHANNEL, customer=caller, handoffs=self.handoffs
        )
        thread = Thread(
            number=number,
            ours=message.to,
            channel=message.channel,
            conversation=conversation,
            last_active=self.clock(),
        )
        self._threads[number] = thread
        self._by_call[thread.call_id] = thread
        logger.info(
            "messaging conversation started",
            extra={"call_id": thread.call_id, "channel": message.channel},
        )
        return thread, await conversation.start()

    async def _customer_said(self, thread: Thread, text: str) -> list[BotMessage]:
        conversation = thread.conversation
        if conversation.handed_off is not None and conversation.ended:
            if self.service is None:
                raise MessagingError("the queues are not running on this server", status=503)
            try:
                await relay.post(self.service, thread.call_id, "customer", text)
            except relay.RelayError as exc:
                # The agent's side is over (or never stored): the customer is told, not ignored.
                logger.info("customer message not relayed", extra={"call_id": thread.call_id})
                thread.closed = True
                return [BotMessage(f"{exc}.")]
            return []
        if conversation.ended:
            return []
        choice = _chosen(text, conversation.buttons)
        try:
            if choice is not None:
                return await conversation.choose(choice)
            return await conversation.send(text)
        except ConversationError as exc:
            return [BotMessage(str(exc))]

    async def _reply(
        self, thread: Thread, messages: list[BotMessage], *, in_reply_to: str | None
    ) -> None:
        text = render(messages)
        if text:
            await self._send(thread, text, in_reply_to=in_reply_to)

    async def _send(self, thread: Thread, text: str, *, in_reply_to: str | None) -> None:
        await self.outbox.send(
            {
                "id": uuid.uuid4().hex,
                "to": thread.number,
                "from": thread.ours,
                "text": text,
                "in_reply_to": in_reply_to,
                "conversation_id": thread.call_id,
                "channel": thread.channel,
            }
        )

    async def _record(self, thread: Thread) -> None:
        """The bot's part of the conversation, stored as a call's is (history, reports)."""
        if self.service is None:
            return
        try:
            await self.service.record_call(thread.conversation.call.state, channel=CHANNEL)
            thread.recorded = True
        except Exception:
            logger.exception(
                "messaging conversation not recorded", extra={"call_id": thread.call_id}
            )

    async def _end(self, thread: Thread, why: str) -> None:
        if self._threads.get(thread.number) is thread:
            del self._threads[thread.number]
        self._by_call.pop(thread.call_id, None)
        if not thread.recorded:
            await self._record(thread)
        if thread.conversation.handed_off is not None and not thread.closed:
            await self._customer_gone(thread)
        with contextlib.suppress(Exception):
            await thread.conversation.aclose()
        logger.info("messaging conversation over", extra={"call_id": thread.call_id, "why": why})

    async def _customer_gone(self, thread: Thread) -> None:
        """The customer stopped writing while handed off (the only way a handed-off
        conversation ends on this side): as when a web chat customer leaves,
        a waiting entry is abandoned and an agent holding the chat goes to its wrap-up (told by
        ``chat_closed``), instead of holding a chat nobody will answer."""
        thread.closed = True
        packet = thread.conversation.handed_off
        if self.service is None or packet is None:
            return
        try:
            entry_id = await self.service.entry_for_handoff(packet.id)
            if entry_id is not None:
                await self.service.abandon(entry_id, reason="customer stopped writing")
            await relay.closed(self.service, thread.call_id, "customer")
        except Exception:
            logger.exception(
                "messaging conversation's queue entry not closed",
                extra={"call_id": thread.call_id},
            )

    @contextlib.asynccontextmanager
    async def _number_lock(self, number: str) -> AsyncIterator[None]:
        """One number's messages are handled one at a time, in arrival order."""
        held = self._numbers.setdefault(number, [asyncio.Lock(), 0])
        held[1] += 1
        try:
            async with held[0]:
                yield
        finally:
            held[1] -= 1
            if held[1] == 0:
                del self._numbers[number]

    async def sweep_idle(self) -> int:
        """End the conversations idle longer than VOICEBOT_MESSAGING_IDLE_HOURS; how many."""
        ended = 0
        for thread in list(self._threads.values()):
            if not self._idle(thread):
                continue
            # The number's lock, as a message would take: one arriving now either comes first
            # (and the conversation is no longer idle) or finds it over and starts a new one.
            async with self._number_lock(thread.number):
                if self._threads.get(thread.number) is not thread or not self._idle(thread):
                    continue
                async with thread.lock:
                    await self._end(thread, "idle")
                ended += 1
        return ended

    async def _sweep(self) -> None:
        """Idle conversations end (their bot part is recorded); the next message starts anew."""
        every = min(60.0, max(1.0, self.idle_seconds / 4))
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep_idle()
            except Exception:  # the sweeper goes on: the next round may succeed
                logger.exception("messaging idle sweep failed")

    # -- the agent's side -------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        kind = event.get("type")
        thread = self._by_call.get(str(event.get("call_id")))
        if thread is None or kind not in ("chat_message", "chat_joined", "chat_closed"):
            return
        text: str | None = None
        if kind == "chat_message" and event.get("sender") == "agent":
            # Not the system lines: they note for the transcript and the agent's pane what
            # chat_joined / chat_closed already tell the customer (one SMS each, not two).
            text = str(event.get("text") or "")
        elif kind == "chat_joined":
            name = event.get("agent_name")
            text = (
                f"{name} from our team has joined the conversation."
                if name
                else ("An agent has joined the conversation.")
            )
        elif kind == "chat_closed" and event.get("by") == "agent":
            thread.closed = True
            text = "The agent has ended this conversation. Message us again any time."
        if text:
            thread.last_active = self.clock()
            task = asyncio.create_task(self._send(thread, text, in_reply_to=None))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        for thread in list(self._threads.values()):
            with contextlib.suppress(Exception):
                await thread.conversation.aclose()
        await self.outbox.aclose()


# -- text rendering --------------------------------------------------------------------------------


def _numbered(buttons: list[Button]) -> list[tuple[str, Button]]:
    """What the customer replies for each button: the menu's own key when every option has
    one (so voice and SMS share "1 for billing"), else its place in the list."""
    if buttons and all(_CHOICE.match(b.value) for b in buttons):
        return [(b.value, b) for b in buttons]
    return [(str(i), b) for i, b in enumerate(buttons, start=1)]


def render(messages: list[BotMessage]) -> str:
    """One SMS for the bot's turn: its lines, then a menu as "Reply 1 for Billing, 2 for ..."."""
    parts = [m.text.strip() for m in messages if m.text.strip()]
    buttons = [b for m in messages for b in m.buttons]
    if buttons:
        choices = [f"{key} for {button.label}" for key, button in _numbered(buttons)]
        listed = choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]
        parts.append(f"Reply {listed}.")
    return "\n".join(parts)


def _chosen(text: str, buttons: list[Button]) -> str | None:
    """The value of the button a reply picks: its number, or its label typed out."""
    if not buttons:
        return None
    match = _CHOICE.match(text)
    if match:
        wanted = match.group(1)
        for key, button in _numbered(buttons):
            if key == wanted:
                return button.value
        return None
    typed = text.strip().lower()
    for button in buttons:
        if typed in (button.label.lower(), button.value.lower()):
            return button.value
    return None


def _hint(message: InboundMessage) -> str:
    digits = sum(ch.isdigit() for ch in message.from_)
    return f"{digits} digits, {'with' if message.from_.strip().startswith('+') else 'no'} '+'"


def verify_inbound(body: bytes, header: str | None, secret: str) -> None:
    """The gateway's signature on an inbound body; :class:`signing.SignatureError` if wrong."""
    signing.verify(body, header, secret)
