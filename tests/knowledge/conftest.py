"""Knowledge-base fixtures: small document sets, and the two stores every store test runs on.

``kb_settings`` is parametrised: each test that uses it runs against the embedded Chroma store and
against a real ``chroma run`` server process started on loopback for the session.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicebot.config import Settings
from voicebot.knowledge.embeddings import LocalEmbeddings
from voicebot.knowledge.service import KnowledgeService
from voicebot.knowledge.store import wait_for_server
from voicebot.nlu.embedder import load_embedder

DOCS = {
    "paper-bills.md": """\
        ---
        title: Paper bills
        tags: [billing]
        ---
        # Paper bills

        ## What a paper bill costs
        A paper bill costs £1.50 a month. Online bills are free.

        ## Free paper bills
        Paper bills are free if you are aged 75 or over, or registered blind.
        """,
    "roaming.md": """\
        ---
        title: Roaming in Europe
        tags: [roaming, mobile]
        ---
        # Roaming in Europe

        ## Daily charges
        | Country | Daily charge | Data |
        |---|---|---|
        | Spain | £2.50 | from your allowance |
        | Switzerland | £5 | 1GB a day |
        """,
    "summer-offer.md": """\
        ---
        title: Summer roaming offer
        tags: [roaming]
        valid_until: 2025-09-30
        ---
        # Summer roaming offer
        Roaming in Spain costs £1 a day until the end of September 2025.
        """,
    "router.html": """\
        <html lang="en-GB"><head><title>Hub lights</title>
        <meta name="keywords" content="broadband, support"></head>
        <body><h1>Hub lights</h1>
        <h2>Orange light</h2><p>A solid orange light means there is no broadband signal on your line.</p>
        <h2>Blue light</h2><p>A blue light means the hub is connected and working.</p>
        </body></html>
        """,
    "top-up.txt": """\
        ---
        title: Pay as you go top-ups
        tags: [mobile, payments]
        ---
        You can top up pay as you go credit in the app or by calling 150. The smallest top-up is £10.
        """,
}


def write_docs(root: Path, docs: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, body in docs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(textwrap.dedent(body), encoding="utf-8")
    return root


class CountingEmbeddings(LocalEmbeddings):
    """The real local embeddings, counting how many texts were embedded for documents."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(load_embedder(settings))
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return super().embed_documents(texts)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run` from the chromadb package) on loopback."""
    path = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    chroma = Path(sys.executable).parent / "chroma"
    log = (path / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(path / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(params=["embedded", "server"])
def kb_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for a fresh, empty knowledge store of each kind."""
    collection = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "server":
        url = request.getfixturevalue("chroma_server")
        return Settings(
            data_dir=tmp_path / "data",
            bot_dir=tmp_path,
            chroma_url=url,
            knowledge_collection=collection,
        )
    return Settings(data_dir=tmp_path / "data", bot_dir=tmp_path, knowledge_collection=collection)


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    return write_docs(tmp_path / "knowledge", dict(DOCS))


@pytest.fixture
def service(kb_settings: Settings, docs_dir: Path) -> KnowledgeService:
    """A knowledge service over ``DOCS``, ingested."""
    knowledge = KnowledgeService.open(kb_settings, docs_dir)
    report = knowledge.ingest()
    assert report.errors == []
    return knowledge
