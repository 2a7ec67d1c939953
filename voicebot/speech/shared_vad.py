"""One silero VAD per call, heard by both the session and the recogniser.

The session runs a VAD for turn-taking and barge-in; the pocketsphinx recogniser needs to know
where each utterance starts and ends too. Running silero twice per call doubled the work that,
on this 2-core machine, limits how many calls stay real-time. Instead the session's VAD stream
publishes its events to the call's :class:`VadEvents`, and the recogniser listens there.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from livekit.agents import utils, vad
from livekit.plugins import silero
from livekit.plugins.silero import onnx_model
from livekit.plugins.silero.vad import VADStream as SileroStream


class VadEvents:
    """A call's VAD events, fanned out to whoever subscribes (the recogniser's streams)."""

    def __init__(self) -> None:
        self._subscribers: set[utils.aio.Chan[vad.VADEvent]] = set()

    def subscribe(self) -> utils.aio.Chan[vad.VADEvent]:
        channel = utils.aio.Chan[vad.VADEvent]()
        self._subscribers.add(channel)
        return channel

    def unsubscribe(self, channel: utils.aio.Chan[vad.VADEvent]) -> None:
        self._subscribers.discard(channel)
        channel.close()

    def publish(self, event: vad.VADEvent) -> None:
        for channel in self._subscribers:
            channel.send_nowait(event)


class PublishingVAD(silero.VAD):
    """silero's VAD whose streams also publish every event to ``events``."""

    def __init__(self, shared: silero.VAD, events: VadEvents) -> None:
        # the ONNX session is shared with every call; each stream keeps its own model state
        super().__init__(session=shared._onnx_session, opts=shared._opts)
        self.events = events

    def stream(self) -> SileroStream:
        stream = _PublishingStream(
            self,
            self._opts,
            onnx_model.OnnxModel(
                onnx_session=self._onnx_session, sample_rate=self._opts.sample_rate
            ),
            self.events,
        )
        self._streams.add(stream)
        return stream


class _PublishingStream(SileroStream):
    def __init__(
        self,
        vad_model: silero.VAD,
        opts: silero.vad._VADOptions,
        model: onnx_model.OnnxModel,
        events: VadEvents,
    ) -> None:
        self._published = events  # before the base class starts the tasks that read it
        super().__init__(vad_model, opts, model)

    async def _metrics_monitor_task(self, event_aiter: AsyncIterable[vad.VADEvent]) -> None:
        # The metrics task already sees every event (a tee of the stream's output): publishing
        # from it costs no extra channel hop per event.
        async def published() -> AsyncIterator[vad.VADEvent]:
            async for event in event_aiter:
                self._published.publish(event)
                yield event

        await super()._metrics_monitor_task(published())
