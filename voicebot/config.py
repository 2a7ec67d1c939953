"""The one place that reads the environment: every setting is a ``VOICEBOT_*`` variable.

A ``.env`` file in the working directory is read too. Nothing else in the package calls
``os.environ`` for configuration (the flow loader's ``${NAME}`` substitution is content, not
configuration, and reads the environment through :meth:`Settings.flow_env`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where an all-MiniLM-L6-v2 ONNX export may already be, in the layout Chroma's default
# embedding function uses (``<dir>/onnx/model.onnx``): an explicit setting wins, then Chroma's
# own download cache, then the models folder that sits beside a checkout of this repository.
_REPO_ROOT = Path(__file__).resolve().parent.parent
_MODEL_CANDIDATES = (
    Path.home() / ".cache" / "chroma" / "onnx_models" / "all-MiniLM-L6-v2",
    Path.home() / ".cache" / "voicebot" / "models" / "all-MiniLM-L6-v2",
    _REPO_ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2",
)


class Settings(BaseSettings):
    """voicebot's configuration. Each field is read from ``VOICEBOT_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="VOICEBOT_", env_file=".env", extra="ignore", env_file_encoding="utf-8"
    )

    bot_dir: Path = Field(
        default=Path("."), description="The bot: a directory holding flows/ and knowledge/."
    )
    data_dir: Path = Field(
        default=Path("data"), description="Where calls, indexes and caches are written."
    )
    embedding_model_dir: Path | None = Field(
        default=None,
        description="Directory of the all-MiniLM-L6-v2 ONNX export (containing onnx/model.onnx).",
    )
    embedding_threads: int = Field(
        default=2, ge=1, description="onnxruntime intra-op threads for the sentence embedder."
    )
    intent_threshold: float = Field(
        default=0.55,
        ge=0.0,
        le=1.0,
        description="Below this confidence an utterance is out of scope (intent null).",
    )
    intent_classifier: Literal["linear", "nearest"] = Field(
        default="linear",
        description="How intents are scored: 'linear' (a logistic-regression head trained on "
        "the examples' embeddings at load, gated by example similarity) or 'nearest' (nearest "
        "examples only).",
    )
    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=False, description="One JSON object per log line.")
    webhook_timeout: float = Field(
        default=5.0, gt=0, description="Default timeout (s) for action webhooks without one."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signs every HTTP action (X-Voicebot-Signature, HMAC-SHA256) unless the "
        "action names its own secret with secret_env. Unset: webhooks go unsigned.",
    )
    max_flow_file_bytes: int = Field(default=1024 * 1024, description="Largest flow file read.")

    # -- knowledge base --
    chroma_url: str | None = Field(
        default=None,
        description="A Chroma server (`chroma run`), e.g. http://127.0.0.1:8000. "
        "Default: an embedded store under data_dir/chroma.",
    )
    knowledge_collection: str = Field(
        default="knowledge", description="The Chroma collection holding the bot's passages."
    )
    knowledge_max_file_bytes: int = Field(
        default=20 * 1024 * 1024, gt=0, description="Largest knowledge document ingested."
    )
    embedding_model: str | None = Field(
        default=None,
        description="An OpenAI-compatible embedding model for the knowledge base (e.g. "
        "text-embedding-3-small). Default: the local all-MiniLM-L6-v2.",
    )
    openai_base_url: str | None = Field(
        default=None, description="Base URL of an OpenAI-compatible API (default: OpenAI's)."
    )
    openai_api_key: SecretStr | None = Field(default=None, description="Its API key.")
    # -- the LLM brain --
    brain: Literal["auto", "offline", "llm"] = Field(
        default="auto",
        description="auto: the LLM brain when an LLM is configured (a key or a base URL), "
        "else the offline one.",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible chat API (Azure OpenAI, vLLM, Ollama: "
        "http://127.0.0.1:11434/v1). Default: OpenAI's.",
    )
    llm_model: str = Field(default="gpt-4o-mini", description="The chat model's name.")
    llm_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("VOICEBOT_LLM_API_KEY", "OPENAI_API_KEY"),
        description="The LLM's API key (OPENAI_API_KEY is read too).",
    )
    llm_timeout: float = Field(
        default=4.0,
        gt=0,
        le=120,
        description="Seconds a model request may take (or stay silent) before the turn "
        "falls back to the offline brain.",
    )
    llm_max_failures: int = Field(
        default=3, ge=1, description="Model failures in one call before it is handed off."
    )
    agent_language: str = Field(
        default="English", description="The language handoff summaries are written in."
    )
    # -- speech (the audio path) --
    stt: Literal["auto", "vosk", "pocketsphinx"] = Field(
        default="auto",
        description="Speech recogniser. auto: Vosk when its model is on disk, else pocketsphinx "
        "(offline, in the wheel) with a language model built from the flows.",
    )
    vosk_model: str = Field(
        default="vosk-model-small-en-us-0.15",
        description="A Vosk model: a name (fetched by `voicebot models download NAME`) or a "
        "directory.",
    )
    models_dir: Path | None = Field(
        default=None,
        description="Where downloaded speech models live and are looked for first: Vosk "
        "(default ~/.cache/vosk), Smart Turn (~/.cache/voicebot/models), Piper voices "
        "(~/.cache/piper).",
    )
    tts: Literal["auto", "edge", "piper", "espeak"] = Field(
        default="auto",
        description="Speech synthesis. auto: edge-tts when Microsoft's service answers at "
        "start-up, else Piper (offline, neural) when it is installed with a voice, else "
        "espeak-ng (offline).",
    )
    piper_voice: str = Field(
        default="en_US-joe-medium",
        description="The Piper voice: a name (NAME.onnx in the models directory or in an "
        "installed *-piper-voice package) or a path to an .onnx file.",
    )
    piper_workers: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Sentences Piper synthesises at once, across all calls (one thread each).",
    )
    tts_voice: str | None = Field(
        default=None, description="A voice name overriding the flows' `bot.voice`."
    )
    tts_rate: str = Field(default="+0%", description="Speaking rate, edge-style: +10%, -5%.")
    tts_pitch: str = Field(default="+0Hz", description="Pitch, edge-style: +0Hz, -20Hz.")
    prompt_cache: bool = Field(
        default=True, description="Synthesise the flows' fixed prompts at start-up."
    )
    vad_min_silence: float = Field(
        default=0.4,
        gt=0.05,
        le=3.0,
        description="Seconds of silence that end a caller utterance (silero VAD).",
    )
    endpointing_delay: float = Field(
        default=0.4,
        ge=0.0,
        le=5.0,
        description="Seconds after the end of speech before the caller's turn is taken as "
        "complete (counted from the end of speech, so it overlaps the VAD's silence).",
    )
    turn_detector: Literal["auto", "smart-turn", "off"] = Field(
        default="auto",
        description="End-of-turn detection from the caller's audio. auto: Smart Turn v3.2 when "
        "its model is on disk (`voicebot models download turn-detector`), else the silence "
        "timers above; off: the timers only.",
    )
    turn_detector_model: Path | None = Field(
        default=None,
        description="The Smart Turn ONNX file (or its directory). Default: "
        "smart-turn-v3.2-cpu.onnx in models_dir, then ~/.cache/voicebot/models.",
    )
    turn_threshold: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="Below this probability of a complete turn, the bot waits turn_max_delay.",
    )
    turn_min_delay: float = Field(
        default=0.25,
        ge=0.0,
        le=5.0,
        description="With the detector: seconds after the end of speech before a turn it "
        "judges complete is answered.",
    )
    turn_max_delay: float = Field(
        default=1.2,
        ge=0.0,
        le=10.0,
        description="With the detector: seconds after the end of speech the bot waits when "
        "the turn sounds unfinished.",
    )
    turn_digit_delay: float = Field(
        default=2.0,
        ge=0.0,
        le=10.0,
        description="With the detector: seconds after the end of speech the bot waits while "
        "the caller gives digits (account or card number, PIN, phone number): the detector is "
        "not asked, so a pause inside a number does not end the turn.",
    )
    asr_decoders: int = Field(
        default=2,
        ge=1,
        le=64,
        description="pocketsphinx decoder processes (utterances decoded at once).",
    )
    max_calls: int = Field(
        default=50, ge=1, description="Simultaneous softphone calls `voicebot serve` takes."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="When set, the HTTP API's write endpoints need 'Authorization: Bearer <it>'.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve GET /metrics without authentication (otherwise it needs the API "
        "token or a supervisor's session); for a scrape network nothing else reaches.",
    )

    # -- queues, agents and the store --
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database: postgresql+asyncpg://user@host/db. "
        "Default: SQLite at data_dir/voicebot.db.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for desktop events across nodes (redis://127.0.0.1:6379/0). "
        "Default: PostgreSQL LISTEN/NOTIFY on PostgreSQL, in-process on SQLite.",
    )
    offer_timeout: float = Field(
        default=15.0, gt=0, le=600, description="Seconds an agent has to accept an offer."
    )
    wrap_up_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="Timed wrap-up after a call ends (0: none)."
    )
    max_chats: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Chats an agent holds at once besides one call, unless set per agent "
        "(voicebot users update --max-chats); 0: no chats.",
    )
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="How long an agent's sign-in lasts."
    )
    secure_cookies: bool = Field(
        default=False,
        description="Mark session cookies Secure (set it when the API is served over HTTPS).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Extra origins (https://desk.example.com) allowed to open the pages' "
        "WebSockets and to write with a session cookie; the API's own origin always is.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins (https://crm.example.com) whose pages may call the API from the "
        "browser (CORS, without cookies: they send the API token). Default: none.",
    )
    chat_origins: list[str] = Field(
        default_factory=list,
        description="Sites (https://www.example.com) that may embed the web chat widget: "
        "/chat is framed only by them (CSP frame-ancestors; JSON list). Default: none, only "
        "this server's own pages.",
    )
    chat_resume_seconds: float = Field(
        default=120,
        ge=0,
        description="How long a web chat whose socket dropped is kept for "
        "the widget to reconnect to it; then it ends (and leaves the queue).",
    )
    chat_max_conversations: int = Field(
        default=500,
        ge=1,
        description="Web chats one server holds at once (bot and agent "
        "parts); more are refused with a clear message.",
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys that encrypt transcripts, handoff packets and reviews at rest, "
        "comma-separated: the first encrypts, all decrypt (rotation). Make one with "
        "'voicebot privacy new-key'. Unset: those columns are stored clear.",
    )
    anger_priority_threshold: float = Field(
        default=0.7, ge=0, le=1, description="Anger at or above this raises a call's priority."
    )

    # -- customer identity and the messaging gateway (docs/channels.md) --
    chat_identity_secret: SecretStr | None = Field(
        default=None,
        description="Verifies the identity tokens a company site puts in the chat widget "
        "(HMAC-SHA256): a chat with a valid token joins that customer's history. Unset: chats "
        "are anonymous.",
    )
    chat_identity_max_age: float = Field(
        default=24 * 3600,
        gt=0,
        description="Seconds an identity token is accepted after it was signed.",
    )
    messaging_secret: SecretStr | None = Field(
        default=None,
        description="Shared with the SMS/WhatsApp gateway: signs what voicebot sends it and "
        "verifies what it posts to /api/messaging/inbound. Unset: the channel is off.",
    )
    messaging_url: str | None = Field(
        default=None,
        description="Where the bot's and agents' replies are POSTed (the gateway's outbound "
        "endpoint). Unset: replies stay in the spool until it is set.",
    )
    messaging_idle_hours: float = Field(
        default=24.0,
        gt=0,
        description="A messaging conversation idle this long ends; the "
        "next message starts a new one.",
    )
    messaging_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds one POST to the gateway may take."
    )

    # -- LiveKit: the API mints the tokens with which agent desktops join phone callers' rooms.
    # The same variables as the worker's (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET).
    livekit_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LIVEKIT_URL", "VOICEBOT_LIVEKIT_URL"),
        description="The LiveKit server (ws:// or wss://); LIVEKIT_URL.",
    )
    livekit_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LIVEKIT_API_KEY", "VOICEBOT_LIVEKIT_API_KEY"),
        description="LiveKit API key; LIVEKIT_API_KEY.",
    )
    livekit_api_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LIVEKIT_API_SECRET", "VOICEBOT_LIVEKIT_API_SECRET"),
        description="LiveKit API secret; LIVEKIT_API_SECRET.",
    )
    livekit_browser_url: str | None = Field(
        default=None,
        description="The LiveKit URL agents' browsers connect to (wss://livekit.example.com), "
        "when it differs from LIVEKIT_URL (a name only reachable inside the servers' network). "
        "Default: LIVEKIT_URL.",
    )

    sip_outbound_trunk: str | None = Field(
        default=None,
        description="The LiveKit outbound SIP trunk id (ST_...) that warm transfers to a phone "
        "dial through (queues with transfer_mode: warm). Unset: those transfers are cold.",
    )

    # call recording (LiveKit Egress)
    recording: Literal["off", "calls"] = Field(
        default="off",
        description="calls: record phone calls through LiveKit Egress (audio only, OGG); "
        "sensitive collect steps are left out, one file per segment between them.",
    )
    recording_filepath: str = Field(
        default="recordings/{room}/{room}-{segment:02d}.ogg",
        description="Where egress writes each recording segment ({room}: the call's room, "
        "{segment}: its number, from 1).",
    )
    recordings_dir: Path | None = Field(
        default=None,
        description="Where this server finds the recordings egress wrote, one folder per call "
        "(the egress output volume, mounted here): the supervisor page plays them and the "
        "quality checks read them. Default: data_dir/recordings.",
    )

    @property
    def resolved_recordings_dir(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def livekit_configured(self) -> bool:
        """Whether the API can mint LiveKit tokens (URL, key and secret all set)."""
        return bool(
            (self.livekit_browser_url or self.livekit_url)
            and self.livekit_api_key
            and self.livekit_api_secret
            and self.livekit_api_secret.get_secret_value()
        )

    @property
    def resolved_livekit_browser_url(self) -> str | None:
        return self.livekit_browser_url or self.livekit_url

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'voicebot.db').resolve()}"

    @property
    def llm_configured(self) -> bool:
        if self.brain == "offline":
            return False
        return self.brain == "llm" or bool(self.llm_api_key or self.llm_base_url)

    def resolved_model_dir(self) -> Path | None:
        """The first directory that holds the embedding model, or None when there is none."""
        candidates = [self.embedding_model_dir] if self.embedding_model_dir else []
        candidates += list(_MODEL_CANDIDATES)
        for candidate in candidates:
            if candidate is not None and (candidate / "onnx" / "model.onnx").is_file():
                return candidate
        return None

    @staticmethod
    def flow_env() -> dict[str, str]:
        """The variables that ``${NAME}`` in flow files may use."""
        return dict(os.environ)
