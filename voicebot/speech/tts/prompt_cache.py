"""A cache of the bot's fixed prompts, synthesised before the first call.

The greeting, menus and fixed ``say`` lines are the same on every call, so they are synthesised
once at start-up (and kept on disk between runs): a cached line starts playing with no
synthesis delay. Lines with template markup are never cached, since they carry caller data.

The session hands TTS one sentence at a time (its sentence tokenizer splits a reply), so each
prompt is stored whole and sentence by sentence; a request that is a run of cached sentences is
served from the cache too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, tokenize, tts, utils

logger = logging.getLogger("voicebot.speech.tts")


def cache_key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class PromptCacheTTS(tts.TTS[Any]):
    """Wraps a TTS; fixed prompts come from memory, everything else from the wrapped TTS."""

    def __init__(
        self,
        inner: tts.TTS[Any],
        *,
        disk_dir: Path | None = None,
        identity: str = "",
        store: dict[str, bytes] | None = None,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=inner.sample_rate,
            num_channels=1,
        )
        self.inner = inner
        self._disk_dir = disk_dir
        # what the audio depends on besides the text (engine, voice, rate), for the disk cache
        self._identity = identity or f"{inner.provider}:{inner.model}:{inner.sample_rate}"
        self._pcm: dict[str, bytes] = {} if store is None else store
        self._sentences = tokenize.blingfire.SentenceTokenizer()
        self.hits = 0
        self.misses = 0

    def for_call(self) -> PromptCacheTTS:
        """A TTS object for one call sharing this cache and synthesiser (a session listens to
        its TTS's events, which must not reach other calls)."""
        return PromptCacheTTS(
            self.inner, disk_dir=self._disk_dir, identity=self._identity, store=self._pcm
        )

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def provider(self) -> str:
        return self.inner.provider

    def __len__(self) -> int:
        return len(self._pcm)

    def lookup(self, text: str) -> bytes | None:
        key = cache_key(text)
        if not key:
            return None
        found = self._pcm.get(key)
        if found is not None:
            return found
        parts = [self._pcm.get(cache_key(s)) for s in self._sentences.tokenize(text)]
        if parts and all(p is not None for p in parts):
            return b"".join(p for p in parts if p is not None)
        return None

    async def prefill(self, prompts: Iterable[str], *, concurrency: int = 2) -> int:
        """Synthesise each prompt, whole and sentence by sentence; returns how many new."""
        texts: dict[str, str] = {}
        for prompt in prompts:
            for text in [prompt, *self._sentences.tokenize(prompt)]:
                key = cache_key(text)
                if key and key not in self._pcm:
                    texts.setdefault(key, text)
        limit = asyncio.Semaphore(concurrency)
        before = len(self._pcm)

        async def fill(key: str, text: str) -> None:
            async with limit:
                pcm = self._read_disk(key)
                if pcm is None:
                    try:
                        pcm = await self._synthesise(text)
                    except Exception as exc:
                        logger.warning(
                            "a prompt could not be synthesised ahead", extra={"detail": str(exc)}
                        )
                        return
                    self._write_disk(key, pcm)
                self._pcm[key] = pcm

        await asyncio.gather(*(fill(k, t) for k, t in texts.items()))
        return len(self._pcm) - before

    async def _synthesise(self, text: str) -> bytes:
        chunks: list[bytes] = []
        async with self.inner.synthesize(text) as stream:
            async for audio in stream:
                if audio.frame.sample_rate != self.sample_rate:
                    raise RuntimeError("the TTS changed its sample rate")
                chunks.append(bytes(audio.frame.data))
        return b"".join(chunks)

    def _disk_path(self, key: str) -> Path | None:
        if self._disk_dir is None:
            return None
        digest = hashlib.sha256(f"{self._identity}\n{key}".encode()).hexdigest()[:32]
        return self._disk_dir / f"{digest}.pcm"

    def _read_disk(self, key: str) -> bytes | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _write_disk(self, key: str, pcm: bytes) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pcm)
            tmp.replace(path)
        except OSError as exc:
            logger.warning("the prompt cache could not be written", extra={"detail": str(exc)})

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        pcm = self.lookup(text)
        if pcm is None:
            self.misses += 1
            return self.inner.synthesize(text, conn_options=conn_options)
        self.hits += 1
        return _CachedStream(tts=self, input_text=text, conn_options=conn_options, pcm=pcm)

    def prewarm(self) -> None:
        self.inner.prewarm()

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CachedStream(tts.ChunkedStream):
    def __init__(
        self, *, tts: PromptCacheTTS, input_text: str, conn_options: APIConnectOptions, pcm: bytes
    ) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._pcm = pcm

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=self._tts.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        output_emitter.push(self._pcm)
        output_emitter.flush()
