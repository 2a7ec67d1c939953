"""Knowledge uploads that try to leave the knowledge folder, or are empty, broken or too
large: each is a clear 4xx, and nothing is written anywhere (the test walks the file system)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.conftest import Server, Start

# (name sent as the file's name or the form's `name`, body, status, words in the answer)
BAD = [
    ("../x.md", b"# Escape\n\nText.\n", 422, "not a valid document name"),
    ("../../x.md", b"# Escape\n\nText.\n", 422, "not a valid document name"),
    ("..\\x.md", b"# Escape\n\nText.\n", 422, "not a valid document name"),
    ("/etc/x.md", b"# Escape\n\nText.\n", 422, "not a valid document name"),
    ("sub/x.md", b"# Escape\n\nText.\n", 422, "not a valid document name"),
    ("C:\\x.md", b"# Escape\n\nText.\n", 422, "not a valid document name"),
    ("x\x00.md", b"# Escape\n\nText.\n", 422, "not a valid document name"),
    ("x.md\x00.txt", b"# Escape\n\nText.\n", 422, "not a valid document name"),
    ("..", b"text", 422, "not a valid document name"),
    (".hidden.md", b"# Hidden\n\nText.\n", 422, "not a valid document name"),
    ("empty.md", b"", 422, "nothing was changed"),
    ("blank.md", b"   \n\n", 422, "nothing was changed"),
    ("broken.pdf", b"%PDF-1.7\n%garbage that is no PDF", 422, "nothing was changed"),
    ("truncated.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", 422, "nothing was changed"),
    ("notes.docx", b"PK\x03\x04 not a real zip", 422, "unsupported type"),
    ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00", 422, "nothing was changed"),
    ("program.exe", b"MZ\x90\x00", 422, "unsupported type"),
]


def files_under(root: Path) -> set[str]:
    """Every file below ``root`` but the databases (SQLite, Chroma), which change on any call."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "data" not in p.relative_to(root).parts
    }


def upload(server: Server, name: str, body: bytes, *, as_form: bool) -> tuple[int, str]:
    with server.token_client() as client:
        if as_form:
            response = client.post(
                "/api/knowledge/documents",
                files={"file": ("ok.md", body, "application/octet-stream")},
                data={"name": name},
            )
        else:
            response = client.post(
                "/api/knowledge/documents",
                files={"file": (name, body, "application/octet-stream")},
            )
    return response.status_code, response.text


@pytest.mark.parametrize("as_form", [False, True], ids=["file-name", "form-name"])
def test_bad_uploads_are_refused_and_write_nothing(
    serve: Start, tmp_path: Path, as_form: bool
) -> None:
    server = serve()
    before = files_under(tmp_path)
    documents = len(server.app.state.knowledge.documents())
    wrong = []
    for name, body, status, words in BAD:
        if status is None or (name.startswith("C:\\") and not as_form):
            # The multipart parser keeps only the last part of a Windows path in a file's
            # name ("x.md"): that lands inside the folder; the form's name is checked as sent.
            continue
        got, text = upload(server, name, body, as_form=as_form)
        if got != status or (words and words not in text):
            wrong.append(f"{name!r}: {got} {text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert files_under(tmp_path) == before  # nothing next to, above or inside the folder
    assert not any(p.name == "x.md" for p in Path("/").glob("*"))
    assert not (tmp_path.parent / "x.md").exists()
    assert len(server.app.state.knowledge.documents()) == documents


def test_a_file_over_the_limit_is_413_and_written_nowhere(serve: Start, tmp_path: Path) -> None:
    server = serve(knowledge_max_file_bytes=1000)
    before = files_under(tmp_path)
    status, text = upload(server, "big.md", b"# Big\n\n" + b"word " * 400, as_form=False)
    assert status == 413 and "VOICEBOT_KNOWLEDGE_MAX_FILE_BYTES" in text
    assert files_under(tmp_path) == before


def test_a_good_upload_lands_in_the_knowledge_folder_only(serve: Start, tmp_path: Path) -> None:
    server = serve()
    before = files_under(tmp_path)
    status, text = upload(
        server, "fees.md", b"# Fees\n\nA late fee is five pounds.\n", as_form=True
    )
    assert status == 201, text
    added = files_under(tmp_path) - before
    assert added == {str((server.knowledge_dir / "fees.md").relative_to(tmp_path))}
