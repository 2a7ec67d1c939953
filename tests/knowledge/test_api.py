"""The knowledge API over real HTTP: uvicorn on loopback, httpx as the client."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from tests.conftest import REPO
from tests.knowledge.conftest import DOCS, write_docs
from voicebot.api.app import create_app
from voicebot.config import Settings
from voicebot.knowledge.service import KnowledgeService

Serve = Callable[..., tuple[httpx.Client, KnowledgeService]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    servers: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(**overrides: object) -> tuple[httpx.Client, KnowledgeService]:
        settings = Settings(data_dir=tmp_path / "data", bot_dir=tmp_path, **overrides)  # type: ignore[arg-type]
        knowledge = KnowledgeService.open(settings, write_docs(tmp_path / "knowledge", dict(DOCS)))
        knowledge.ingest()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, knowledge_service=knowledge),
                host="127.0.0.1",
                port=0,
                log_config=None,
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        servers.append((server, thread, client))
        return client, knowledge

    yield start
    for server, thread, client in servers:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_health_and_openapi(serve: Serve) -> None:
    client, _ = serve()
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["knowledge"] == {"status": "ok", "passages": 7}
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/knowledge/documents", "/api/knowledge/search", "/api/knowledge/answer"} <= set(
        paths
    )


def test_list_get_search_and_answer(serve: Serve) -> None:
    client, _ = serve()
    documents = client.get("/api/knowledge/documents").json()
    assert [d["name"] for d in documents] == sorted(DOCS)
    one = client.get("/api/knowledge/documents/paper-bills.md").json()
    assert one["title"] == "Paper bills" and one["chunks"] == 2 and one["tags"] == ["billing"]

    found = client.get(
        "/api/knowledge/search", params={"q": "price of a paper bill", "k": 2}
    ).json()
    assert found["passages"][0]["source"] == "paper-bills.md"
    assert len(found["passages"]) == 2
    assert set(found["passages"][0]) >= {
        "score",
        "title",
        "heading",
        "text",
        "vector_score",
        "keyword_score",
    }

    tagged = client.get(
        "/api/knowledge/search", params=[("q", "costs"), ("tag", "payments")]
    ).json()
    assert {p["source"] for p in tagged["passages"]} == {"top-up.txt"}

    answer = client.get("/api/knowledge/answer", params={"q": "what is the smallest top up"}).json()
    assert "£10" in answer["answer"]
    assert answer["sources"][0]["file"] == "top-up.txt"
    unknown = client.get("/api/knowledge/answer", params={"q": "who won the football"}).json()
    assert unknown["answer"] is None and unknown["sources"] == []


def test_upload_then_delete(serve: Serve, tmp_path: Path) -> None:
    client, knowledge = serve()
    body = b"---\ntitle: Voicemail\ntags: [mobile]\n---\n# Voicemail\nCall 121 to hear your voicemail messages.\n"
    created = client.post(
        "/api/knowledge/documents", files={"file": ("voicemail.md", body, "text/markdown")}
    )
    assert created.status_code == 201, created.text
    assert created.json()["outcome"] == {
        "name": "voicemail.md",
        "status": "added",
        "chunks": 1,
        "message": None,
        "warnings": [],
    }
    assert created.json()["document"]["title"] == "Voicemail"
    assert (tmp_path / "knowledge" / "voicemail.md").read_bytes() == body
    answer = client.get(
        "/api/knowledge/answer", params={"q": "how do I listen to my voicemail"}
    ).json()
    assert "121" in answer["answer"]

    again = client.post(
        "/api/knowledge/documents", files={"file": ("voicemail.md", body, "text/markdown")}
    )
    assert again.status_code == 200 and again.json()["outcome"]["status"] == "unchanged"

    changed = client.post(
        "/api/knowledge/documents",
        files={"file": ("whatever.txt", b"Call 123 for voicemail now.", "text/plain")},
        data={"name": "voicemail.md"},
    )
    assert changed.status_code == 201 and changed.json()["outcome"]["status"] == "changed"

    assert client.delete("/api/knowledge/documents/voicemail.md").status_code == 204
    assert not (tmp_path / "knowledge" / "voicemail.md").exists()
    assert "voicemail.md" not in {d.name for d in knowledge.documents()}
    assert client.delete("/api/knowledge/documents/voicemail.md").status_code == 404
    assert client.get("/api/knowledge/documents/voicemail.md").status_code == 404


def test_a_pdf_upload(serve: Serve) -> None:
    client, _ = serve()
    pdf = (REPO / "knowledge" / "price-guide.pdf").read_bytes()
    created = client.post(
        "/api/knowledge/documents", files={"file": ("guide.pdf", pdf, "application/pdf")}
    )
    assert created.status_code == 201 and created.json()["document"]["format"] == "pdf"


@pytest.mark.parametrize(
    ("name", "body", "status", "detail"),
    [
        ("empty.md", b"", 422, "empty.md is empty; nothing was changed"),
        ("image.md", b"\x89PNG\x00\x00\x00", 422, "looks like a binary file"),
        ("broken.pdf", b"%PDF-1.4 garbage", 422, "broken PDF"),
        ("notes.docx", b"PK\x03\x04", 422, "unsupported type"),
        ("../escape.md", b"text", 422, "not a valid document name"),
        ("", b"text", 422, None),
    ],
)
def test_bad_uploads_are_refused_and_change_nothing(
    serve: Serve, tmp_path: Path, name: str, body: bytes, status: int, detail: str | None
) -> None:
    client, knowledge = serve()
    before = sorted(p.name for p in (tmp_path / "knowledge").iterdir())
    response = client.post(
        "/api/knowledge/documents", files={"file": (name, body, "application/octet-stream")}
    )
    assert response.status_code == status, response.text
    if detail:
        assert detail in response.json()["detail"]
    assert sorted(p.name for p in (tmp_path / "knowledge").iterdir()) == before
    assert len(knowledge.documents()) == 5


def test_a_broken_upload_does_not_replace_a_good_document(serve: Serve, tmp_path: Path) -> None:
    client, knowledge = serve()
    good = (tmp_path / "knowledge" / "paper-bills.md").read_bytes()
    response = client.post(
        "/api/knowledge/documents", files={"file": ("paper-bills.md", b"\x00\x00", "text/markdown")}
    )
    assert response.status_code == 422
    assert (tmp_path / "knowledge" / "paper-bills.md").read_bytes() == good
    assert knowledge.search("paper bill")[0].source == "paper-bills.md"


def test_too_large_is_413(serve: Serve) -> None:
    client, _ = serve(knowledge_max_file_bytes=100)
    response = client.post(
        "/api/knowledge/documents", files={"file": ("big.md", b"x" * 101, "text/markdown")}
    )
    assert response.status_code == 413
    assert "VOICEBOT_KNOWLEDGE_MAX_FILE_BYTES" in response.json()["detail"]


@pytest.mark.parametrize(
    ("q", "status"), [("", 422), ("   ", 422), ("a" * 5001, 422), ("paper bill " * 450, 200)]
)
def test_question_limits(serve: Serve, q: str, status: int) -> None:
    client, _ = serve()
    assert client.get("/api/knowledge/search", params={"q": q}).status_code == status
    assert client.get("/api/knowledge/answer", params={"q": q}).status_code == status


def test_writes_need_the_token_when_one_is_set(serve: Serve) -> None:
    client, _ = serve(api_token=SecretStr("s3cret"))
    upload = {"file": ("a.md", b"Some text about bills.", "text/markdown")}
    assert client.post("/api/knowledge/documents", files=upload).status_code == 401
    bad = client.post(
        "/api/knowledge/documents", files=upload, headers={"Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401
    assert client.delete("/api/knowledge/documents/paper-bills.md").status_code == 401
    assert client.post("/api/knowledge/ingest").status_code == 401
    ok = client.post(
        "/api/knowledge/documents", files=upload, headers={"Authorization": "Bearer s3cret"}
    )
    assert ok.status_code == 201
    # reading needs no token
    assert client.get("/api/knowledge/documents").status_code == 200


def test_ingest_endpoint_syncs_files_edited_on_disk(serve: Serve, tmp_path: Path) -> None:
    client, _ = serve()
    shutil.copy(REPO / "knowledge" / "voicemail.md", tmp_path / "knowledge" / "voicemail.md")
    (tmp_path / "knowledge" / "top-up.txt").unlink()
    report = client.post("/api/knowledge/ingest").json()
    assert (report["added"], report["removed"], report["unchanged"]) == (1, 1, 4)
