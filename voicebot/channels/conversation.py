"""A chat or messaging conversation with the bot: the same flows, engine, brain and knowledge as
a call, over the same in-process ``AgentSession`` (voicebot/agent/text_session.py).

Only what a text channel changes lives here:

- a menu's options become buttons, and a confirmation gets Yes/No buttons; pressing a button
  sends the option's key as a keypad press (menus with keys) or its text;
- a customer's message over :data:`MAX_MESSAGE_CHARS` is refused, not cut;
- no-input never fires: a chat has no silence timer (a customer typing, or reading, is not a
  caller who went quiet), so ``no_input`` prompts and their retries are a voice matter;
- a card collect (``card``, keypad-only, and ``card_number``) cannot run: a chat has no keypad,
  and card details must never be typed into a chat transcript. The conversation tells the
  customer so, before they type anything, and hands off to a person (the default queue,
  reason :data:`CARD_IN_CHAT_REASON`), who can take the payment another way (a payment link,
  a call back).

After a handoff the conversation with the bot is over; what the customer and the agent write
next goes through voicebot/channels/relay.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from voicebot.agent.text_session import TextSession, TextTurn
from voicebot.engine.events import Expectation
from voicebot.engine.steps import CARD_STAGE_TYPES, TECHNICAL_APOLOGY
from voicebot.flows.schema import MenuStep
from voicebot.handoff.packet import CallerInfo, HandoffPacket

if TYPE_CHECKING:
    from voicebot.handoff.sinks import HandoffSink
    from voicebot.runtime.bot import BotRuntime
    from voicebot.runtime.call import CallRuntime

__all__ = [
    "CARD_IN_CHAT",
    "CARD_IN_CHAT_REASON",
    "MAX_MESSAGE_CHARS",
    "BotMessage",
    "Button",
    "Conversation",
    "ConversationError",
]

MAX_MESSAGE_CHARS = 2000
CARD_IN_CHAT_REASON = "card details asked for in a chat, which cannot take them"
CARD_IN_CHAT = (
    "For your security, card details can't be taken in this chat, so please don't type them "
    "here. I'm passing you to a member of the team who can help you pay safely."
)
# Every collect of card data, keypad-only or not: a card number typed into a chat would sit in
# the customer's own transcript on screen and in whatever the browser keeps.
_CARD_TYPES = frozenset({*CARD_STAGE_TYPES.values(), "card_number"})
_YES_NO = ("Yes", "No")


class ConversationError(ValueError):
    """A customer message the conversation refuses (too long, empty, a stale button, a
    conversation already over); the message says why, and nothing of the conversation is lost."""


@dataclass
class Button:
    """A menu option shown as a button; ``value`` is what choosing it sends."""

    label: str
    value: str  # the option's key ("1") when the menu has keys, else its first phrase


@dataclass
class BotMessage:
    text: str
    buttons: list[Button] = field(default_factory=list)


class _ChannelSink:
    """Delivers the app's handoffs with the channel on the packet. The packet the call keeps
    is the same object, so the screen pop, the queue entry and the conversation tests all see
    it."""

    def __init__(self, inner: HandoffSink, channel: str) -> None:
        self.inner = inner
        self.channel = channel

    async def deliver(self, packet: HandoffPacket) -> None:
        if packet.channel is None:
            packet.channel = self.channel
        await self.inner.deliver(packet)


class Conversation:
    """One chat or messaging conversation with the bot, over the same AgentSession/TextSession
    and engine as a call (no second dialogue implementation)."""

    def __init__(
        self,
        bot: BotRuntime,
        *,
        channel: str,
        customer: CallerInfo | None = None,
        conversation_id: str | None = None,
        language: str | None = None,
        handoffs: HandoffSink | None = None,
        call: CallRuntime | None = None,
    ) -> None:
        """``handoffs``: where a handoff goes (default the bot's own sink: in ``voicebot serve``
        the built-in queues, as for the softphone). ``language``: one of the bot's declared
        languages, else :class:`ConversationError`. ``call``: a call already made by
        ``bot.new_call`` (the conversation tests bring their mocks and clock that way)."""
        self.channel = channel
        caller = customer.model_copy(deep=True) if customer is not None else CallerInfo()
        caller.attributes["channel"] = channel
        if call is None:
            runtime = dataclasses.replace(
                bot, handoffs=_ChannelSink(handoffs or bot.handoffs, channel)
            )
            declared = _declared(bot, language) if language is not None else None
            try:
                call = runtime.new_call(caller=caller, call_id=conversation_id, language=declared)
            except ValueError as exc:
                raise ConversationError(str(exc)) from None
        else:
            call.state.caller.attributes["channel"] = channel
            call.bot = dataclasses.replace(
                call.bot, handoffs=_ChannelSink(handoffs or call.bot.handoffs, channel)
            )
        self.call = call
        self.last_turn: TextTurn | None = None  # the session's last turn (conversation tests)
        self.session = TextSession(call)
        self._lock = asyncio.Lock()
        self._started = False
        self._buttons: list[Button] = []
        self._keys = False  # the buttons on offer are a menu's keys

    # -- the public surface --------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return self.call.state.call_id

    @property
    def handed_off(self) -> HandoffPacket | None:
        return self.call.state.handoff

    @property
    def ended(self) -> bool:
        return self.call.ended

    @property
    def buttons(self) -> list[Button]:
        """The buttons on offer now (what the last bot message showed)."""
        return list(self._buttons)

    async def start(self) -> list[BotMessage]:
        """The greeting (and whatever the start flow says before it waits)."""
        async with self._lock:
            if self._started:
                raise ConversationError("the conversation has already started")
            self._started = True
            return await self._answer(await self.session.start())

    async def send(self, text: str) -> list[BotMessage]:
        """The customer typed ``text``."""
        async with self._lock:
            text = self._check(text)
            return await self._answer(await self.session.say(text))

    async def choose(self, value: str) -> list[BotMessage]:
        """The customer pressed the button whose value is ``value``."""
        async with self._lock:
            value = self._check(value)
            if not any(b.value == value for b in self._buttons):
                offered = ", ".join(repr(b.value) for b in self._buttons) or "none"
                raise ConversationError(
                    f"{value!r} is not one of the choices on offer now (offered: {offered})"
                )
            if self._keys:
                return await self._answer(await self.session.press(value))
            return await self._answer(await self.session.say(value))

    async def aclose(self) -> None:
        await self.session.aclose()

    # -- what a text channel changes -----------------------------------------------------------

    def _check(self, text: str) -> str:
        if not self._started:
            raise ConversationError("the conversation has not started yet")
        if self.ended:
            raise ConversationError(
                "the conversation with the bot is over"
                + (" (it was handed to an agent)" if self.handed_off else "")
            )
        if not isinstance(text, str):
            raise ConversationError("a message is text")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ConversationError(
                f"messages are at most {MAX_MESSAGE_CHARS} characters; this one has "
                f"{len(text)} and was not sent"
            )
        text = text.strip()
        if not text:
            raise ConversationError("the message is empty")
        return text

    async def _answer(self, turn: TextTurn) -> list[BotMessage]:
        self.last_turn = turn
        lines = [line.text for line in turn.reply.lines] or list(turn.lines)
        expect = self.call.bot.engine.expectation(self.call.state)
        if not self.ended and _card_collect(expect):
            # The last line is the card prompt ("key in your card number..."): not for a chat.
            lines = lines[:-1] + await self._refuse_card()
            expect = Expectation("none")
        messages = [BotMessage(text) for text in lines if text.strip()]
        self._buttons, self._keys = _buttons(expect, self._menu_words(expect))
        if self._buttons:
            if not messages:
                messages.append(BotMessage(""))
            messages[-1].buttons = list(self._buttons)
        return messages

    async def _refuse_card(self) -> list[str]:
        """Hand off instead of waiting for keys a chat cannot send (see the module docstring)."""
        # Recorded first, so the agent's transcript shows why before the engine's handoff line.
        self.call.state.record("bot", CARD_IN_CHAT, self.call.bot.engine.clock())
        reply = await self.call.give_up(CARD_IN_CHAT_REASON)
        # The engine's apology is for a failure; the customer is told the real reason instead.
        said = [line.text for line in reply.lines if line.text != TECHNICAL_APOLOGY]
        return [CARD_IN_CHAT, *said]

    def _menu_words(self, expect: Expectation) -> list[list[str]] | None:
        """Each option's words in the conversation's language, for the button labels (the
        expectation holds every language's words, for understanding any of them)."""
        if expect.kind != "menu":
            return None
        wanted = [choice.phrases for choice in expect.options]
        language = self.call.state.language
        for flow in self.call.bot.loaded.definition.flows.values():
            for step in flow.steps:
                if (
                    isinstance(step, MenuStep)
                    and [tuple(o.words()) for o in step.options] == wanted
                ):
                    return [o.words(language) or o.words() for o in step.options]
        return None


def _declared(bot: BotRuntime, language: str) -> str:
    definition = bot.loaded.definition.bot
    declared = list(getattr(definition, "languages", None) or []) or [definition.language]
    for known in declared:
        if known.lower() == language.lower():
            return str(known)
    for known in declared:  # "es" picks "es-ES"
        if known.split("-")[0].lower() == language.split("-")[0].lower():
            return str(known)
    raise ConversationError(
        f"unknown language {language!r}: this bot speaks {', '.join(map(str, declared))}"
    )


def _card_collect(expect: Expectation) -> bool:
    return expect.kind == "collect" and expect.slot is not None and expect.slot.type in _CARD_TYPES


def _buttons(
    expect: Expectation, words: list[list[str]] | None = None
) -> tuple[list[Button], bool]:
    """The buttons for what the bot waits for, and whether pressing one sends a key.
    ``words``: each menu option's words in the conversation's language."""
    if expect.kind == "menu":
        keys = bool(expect.options) and all(o.key is not None for o in expect.options)
        buttons = []
        for i, option in enumerate(expect.options):
            phrases = words[i] if words is not None and words[i] else option.phrases
            label = phrases[0] if phrases else f"Option {option.key}"
            value = option.key if keys and option.key is not None else label
            buttons.append(Button(label=label[:1].upper() + label[1:], value=value))
        return buttons, keys
    if expect.kind == "yes_no" or (
        expect.kind == "collect" and expect.slot is not None and expect.slot.type == "yes_no"
    ):
        return [Button(label=word, value=word.lower()) for word in _YES_NO], False
    if expect.kind == "collect" and expect.slot is not None and expect.slot.choices:
        choices = expect.slot.choices
        return [Button(label=c[:1].upper() + c[1:], value=c) for c in choices], False
    return [], False
