# voicebot with its system packages. The embedding and end-of-turn models are downloaded at build
# time (the build needs internet); mount a bot directory at /bot to run your own flows. Piper
# (GPL-3.0) is left out: add `RUN pip install ".[piper]"` to speak with it instead of espeak-ng.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    VOICEBOT_BOT_DIR=/app \
    VOICEBOT_DATA_DIR=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates espeak-ng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY voicebot ./voicebot
RUN pip install .
RUN voicebot models download embedder && voicebot models download turn-detector
COPY flows ./flows
COPY knowledge ./knowledge

RUN useradd --create-home voicebot && mkdir -p /data && chown voicebot /data \
    && cp -r /root/.cache /home/voicebot/.cache && chown -R voicebot /home/voicebot/.cache
USER voicebot
VOLUME ["/data"]
ENTRYPOINT ["voicebot"]
CMD ["chat"]
