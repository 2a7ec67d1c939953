"""``/api/knowledge``: upload, list, delete and search the documents the bot answers from.

Handlers are plain functions: FastAPI runs them in its thread pool, which is where blocking
embedding and Chroma calls belong.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile, status
from pydantic import BaseModel, Field

from voicebot.api.deps import Knowledge, Writer
from voicebot.knowledge.documents import DocumentError
from voicebot.knowledge.retriever import MAX_QUESTION_CHARS
from voicebot.knowledge.store import DocumentInfo

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"])

# A question longer than this is not a question; refusing it keeps a client bug visible.
_MAX_API_QUESTION = 5 * MAX_QUESTION_CHARS


class DocumentOut(BaseModel):
    name: str
    title: str
    format: str
    tags: list[str]
    url: str | None = None
    language: str | None = None
    valid_until: dt.date | None = None
    ingested_at: str | None = None
    chunks: int
    file_hash: str

    @classmethod
    def of(cls, info: DocumentInfo) -> DocumentOut:
        return cls.model_validate(info.__dict__)


class FileOutcomeOut(BaseModel):
    name: str
    status: Literal["added", "changed", "unchanged", "removed", "duplicate", "skipped", "error"]
    chunks: int = 0
    message: str | None = None
    warnings: list[str] = Field(default_factory=list)


class UploadOut(BaseModel):
    outcome: FileOutcomeOut
    document: DocumentOut | None


class IngestOut(BaseModel):
    added: int
    changed: int
    unchanged: int
    removed: int
    chunks_written: int
    errors: int
    files: list[FileOutcomeOut]


class PassageOut(BaseModel):
    id: str
    text: str
    title: str
    source: str
    heading: str
    url: str | None
    tags: list[str]
    score: float
    vector_score: float
    keyword_score: float


class SearchOut(BaseModel):
    question: str
    passages: list[PassageOut]


class SourceOut(BaseModel):
    id: str
    title: str | None
    file: str | None
    heading: str | None
    score: float


class AnswerOut(BaseModel):
    question: str
    answer: str | None = Field(description="What the bot would say; null: it does not know.")
    score: float
    sources: list[SourceOut]


Question = Annotated[
    str,
    Query(
        min_length=1,
        max_length=_MAX_API_QUESTION,
        description="The caller's question (longer than 1,000 characters is cut).",
    ),
]
Tags = Annotated[list[str] | None, Query(alias="tag", description="Only documents with a tag.")]


def _question(q: str) -> str:
    if not q.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="the question is empty")
    return q


@router.get("/documents", response_model=list[DocumentOut])
def list_documents(knowledge: Knowledge) -> list[DocumentOut]:
    return [DocumentOut.of(d) for d in knowledge.documents()]


@router.get("/documents/{name:path}", response_model=DocumentOut)
def get_document(name: str, knowledge: Knowledge) -> DocumentOut:
    for doc in knowledge.documents():
        if doc.name == name:
            return DocumentOut.of(doc)
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no document named '{name}'")


@router.post(
    "/documents",
    response_model=UploadOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Writer],
    responses={413: {"description": "Too large"}, 422: {"description": "Not a usable document"}},
)
def upload_document(
    knowledge: Knowledge,
    response: Response,
    file: Annotated[UploadFile, File(description="A Markdown, HTML, PDF or text file.")],
    name: Annotated[
        str | None, Form(description="Store it under this name (default: the file's name).")
    ] = None,
) -> UploadOut:
    """Save the file into knowledge/ and index it. A file that fails its checks replaces
    nothing: the error says why."""
    limit = knowledge.settings.knowledge_max_file_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"the file is over the {limit} byte limit (VOICEBOT_KNOWLEDGE_MAX_FILE_BYTES)",
        )
    target = name or file.filename or ""
    try:
        outcome = knowledge.add_document(target, data)
    except DocumentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    if outcome.status == "error":
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"{outcome.name} {outcome.message}"
        )
    if outcome.status == "unchanged":
        response.status_code = status.HTTP_200_OK
    document = next((d for d in knowledge.documents() if d.name == outcome.name), None)
    return UploadOut(
        outcome=FileOutcomeOut.model_validate(outcome.__dict__),
        document=DocumentOut.of(document) if document else None,
    )


@router.delete(
    "/documents/{name:path}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Writer]
)
def delete_document(name: str, knowledge: Knowledge) -> Response:
    if not knowledge.delete_document(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no document named '{name}'")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/ingest", response_model=IngestOut, dependencies=[Writer])
def ingest(
    knowledge: Knowledge,
    rebuild: Annotated[bool, Query(description="Drop the index and embed everything.")] = False,
) -> IngestOut:
    """Sync the index with the files in knowledge/ (after they were edited on disk)."""
    return IngestOut.model_validate(knowledge.ingest(rebuild=rebuild).to_dict())


@router.get("/search", response_model=SearchOut)
def search(
    knowledge: Knowledge,
    q: Question,
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    tags: Tags = None,
) -> SearchOut:
    passages = knowledge.search(_question(q), k=k, tags=tuple(tags or ()))
    return SearchOut(
        question=q,
        passages=[PassageOut.model_validate(p.__dict__ | {"tags": list(p.tags)}) for p in passages],
    )


@router.get("/answer", response_model=AnswerOut)
def answer(
    knowledge: Knowledge,
    q: Question,
    tags: Tags = None,
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.35,
) -> AnswerOut:
    """What the ``answer`` step would say offline, and the passage it came from."""
    found = knowledge.answer_now(_question(q), tags=tuple(tags or ()), min_score=min_score)
    return AnswerOut(
        question=q,
        answer=found.text,
        score=found.score,
        sources=[SourceOut.model_validate(s.model_dump()) for s in found.sources],
    )
