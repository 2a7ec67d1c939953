"""Conversation tests with ``channel: chat``: the test's call runs as a web chat, through
:class:`~voicebot.channels.conversation.Conversation`, so a test sees what a chat customer
sees: menus as buttons, a refusal at a card prompt, no keypad and no no-input timer."""

from __future__ import annotations

from voicebot.agent.text_session import TextTurn
from voicebot.channels.conversation import BotMessage, Button, Conversation, ConversationError
from voicebot.runtime.bot import BotRuntime
from voicebot.runtime.call import CallRuntime, Reply


class ChatTestSession:
    """The runner's session interface (start, say, aclose) over a chat, plus ``choose``."""

    def __init__(self, runtime: BotRuntime, call: CallRuntime) -> None:
        self.conversation = Conversation(runtime, channel="chat", call=call)

    @property
    def buttons(self) -> list[Button]:
        return self.conversation.buttons

    async def start(self) -> TextTurn:
        return self._turn(await self.conversation.start())

    async def say(self, text: str) -> TextTurn:
        return self._turn(await self.conversation.send(text))

    async def choose(self, value: str) -> TextTurn:
        """Press the button whose value is ``value``, or whose label is (any case)."""
        for button in self.buttons:
            if button.value != value and button.label.lower() == value.lower():
                value = button.value
                break
        return self._turn(await self.conversation.choose(value))

    async def press(self, digits: str) -> TextTurn:
        raise ConversationError("a chat has no keypad: use 'choose' or 'user'")

    async def silence(self, seconds: float) -> TextTurn:
        raise ConversationError("a chat has no no-input timer: silence never ends a turn")

    def _turn(self, messages: list[BotMessage]) -> TextTurn:
        turn = self.conversation.last_turn
        reply = turn.reply if turn is not None else Reply()
        packet = self.conversation.handed_off
        if reply.handoff is None and packet is not None:  # the chat's own handoff (a card)
            reply = Reply(lines=list(reply.lines), handoff=packet)
        return TextTurn(
            lines=[m.text for m in messages if m.text],
            reply=reply,
            latency_ms=turn.latency_ms if turn is not None else None,
        )

    @property
    def ended(self) -> bool:
        return self.conversation.ended

    async def aclose(self) -> None:
        await self.conversation.aclose()
