"""OpenAI-compatible embeddings, against a scripted ``/v1/embeddings`` server on loopback."""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr

from voicebot.config import Settings
from voicebot.knowledge.embeddings import OpenAICompatibleEmbeddings, embeddings_for
from voicebot.knowledge.service import KnowledgeService
from voicebot.knowledge.store import EmbedderMismatch

DIMENSION = 64


def _vector(text: str) -> list[float]:
    """A bag-of-words vector: texts that share words are close, as with a real model."""
    vector = [0.0] * DIMENSION
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _Handler(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        if self.path != "/v1/embeddings":
            self.send_error(404)
            return
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        payload = {
            "object": "list",
            "model": body["model"],
            # returned out of order on purpose: clients must sort by index
            "data": [
                {"object": "embedding", "index": i, "embedding": _vector(text)}
                for i, text in reversed(list(enumerate(inputs)))
            ],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def openai_server() -> Iterator[str]:
    _Handler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_embeddings_go_over_the_wire_in_order(openai_server: str) -> None:
    embeddings = OpenAICompatibleEmbeddings(
        model="text-embedding-3-small", base_url=openai_server, api_key="k"
    )
    vectors = embeddings.embed_documents(["paper bills", "roaming in spain"])
    assert vectors == [_vector("paper bills"), _vector("roaming in spain")]
    assert _Handler.requests[0]["body"]["model"] == "text-embedding-3-small"
    assert _Handler.requests[0]["auth"] == "Bearer k"


def test_ingest_and_search_with_a_remote_model_then_refuse_a_switch(
    openai_server: str, tmp_path: Path, docs_dir: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        bot_dir=tmp_path,
        embedding_model="text-embedding-3-small",
        openai_base_url=openai_server,
        openai_api_key=SecretStr("k"),
    )
    remote = embeddings_for(settings)
    assert remote.identity == "openai:text-embedding-3-small"
    knowledge = KnowledgeService.open(settings, docs_dir)
    report = knowledge.ingest()
    assert report.added == 5
    assert knowledge.search("paper bill costs")[0].source == "paper-bills.md"

    # The same index with the local model would mix vectors of two models: refused, with the fix.
    with pytest.raises(EmbedderMismatch, match="ingest --rebuild"):
        KnowledgeService.open(settings.model_copy(update={"embedding_model": None}), docs_dir)
    local = KnowledgeService.open(
        settings.model_copy(update={"embedding_model": None, "knowledge_collection": "other"}),
        docs_dir,
    )
    assert local.store.count() == 0
