"""``voicebot knowledge ...``: ingest documents, search them, and hear what the bot would answer."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Annotated

import typer

from voicebot.cli.common import BotOption, settings_for, setup_logging

knowledge_app = typer.Typer(
    help="The knowledge base: the documents in knowledge/ the bot answers questions from.",
    no_args_is_help=True,
)

TagOption = Annotated[
    list[str] | None, typer.Option("--tag", "-t", help="Only documents with this tag (repeatable).")
]


def _service(bot: Path | None, *, sync: bool = False):  # type: ignore[no-untyped-def]
    from voicebot.knowledge.service import KnowledgeService
    from voicebot.knowledge.store import KnowledgeUnavailable
    from voicebot.nlu.embedder import EmbeddingModelMissing

    settings = settings_for(bot)
    setup_logging(settings, quiet=True)
    try:
        return KnowledgeService.open(settings)
    except (KnowledgeUnavailable, EmbeddingModelMissing) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


class _Bar:
    """Rich's progress bar on stderr, one step per file."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.progress.add_task("", total=None)

    def start(self, files: int) -> None:
        self.progress.update(self.task, total=files)
        self.progress.start()

    def file_done(self, outcome) -> None:  # type: ignore[no-untyped-def]
        self.progress.update(self.task, advance=1, description=outcome.name)

    def stop(self) -> None:
        self.progress.stop()


@knowledge_app.command("ingest")
def ingest(
    directory: Annotated[
        Path | None,
        typer.Argument(help="The documents' folder. Default: knowledge/ in the bot directory."),
    ] = None,
    bot: BotOption = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the index and embed everything again.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Index Markdown, HTML, PDF and text files. Unchanged files are skipped, removed ones deleted.

    Exits 1 when a file could not be ingested (the others still are).
    """
    service = _service(bot)
    directory = directory or service.knowledge_dir
    if not directory.is_dir():
        typer.echo(f"error: {directory} is not a directory", err=True)
        raise typer.Exit(1)
    bar = None if as_json else _Bar()
    try:
        report = service.ingest(directory, rebuild=rebuild, progress=bar)
    finally:
        if bar is not None:
            bar.stop()
    failed = [f for f in report.files if f.status == "error"]
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(
            f"added {report.added}, changed {report.changed}, unchanged {report.unchanged}, "
            f"removed {report.removed}; {report.chunks_written} chunks written"
        )
        for outcome in report.files:
            if outcome.status in ("error", "duplicate", "skipped"):
                typer.echo(f"{outcome.status:<9} {outcome.name}: {outcome.message}", err=True)
            for warning in outcome.warnings:
                typer.echo(f"warning   {outcome.name}: {warning}", err=True)
    if failed:
        raise typer.Exit(1)


@knowledge_app.command("search")
def search(
    question: Annotated[str, typer.Argument(help="The question, as a caller would ask it.")],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="How many passages.")] = 5,
    tag: TagOption = None,
    bot: BotOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The best passages for a question, with score, title, file and heading path."""
    service = _service(bot)
    passages = service.search(question, k=k, tags=tuple(tag or ()))
    if as_json:
        typer.echo(json.dumps([p.__dict__ for p in passages], indent=2, ensure_ascii=False))
        return
    if not passages:
        typer.echo("no passages found")
        return
    for rank, p in enumerate(passages, 1):
        where = f"{p.source} › {p.heading}" if p.heading else p.source
        typer.echo(f"{rank}. {p.score:.2f}  {p.title}  ({where})")
        typer.echo(textwrap.indent(textwrap.fill(p.text, 96), "   "))


@knowledge_app.command("answer")
def answer(
    question: Annotated[str, typer.Argument(help="The question, as a caller would ask it.")],
    tag: TagOption = None,
    min_score: Annotated[
        float, typer.Option("--min-score", help="Below this the bot says it does not know.")
    ] = 0.35,
    bot: BotOption = None,
) -> None:
    """What the answer step would say to a question (offline), and the source it used."""
    service = _service(bot)
    found = service.answer_now(question, tags=tuple(tag or ()), min_score=min_score)
    if found.text is None:
        typer.echo(f"(no answer: best score {found.score:.2f} is below {min_score:.2f})")
        raise typer.Exit(1)
    typer.echo(found.text)
    for source in found.sources:
        typer.echo(
            f"  source: {source.file} › {source.heading or source.title} ({source.score:.2f})"
        )


@knowledge_app.command("list")
def list_documents(
    bot: BotOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The documents in the index."""
    service = _service(bot)
    documents = service.documents()
    if as_json:
        typer.echo(
            json.dumps([d.__dict__ for d in documents], indent=2, default=str, ensure_ascii=False)
        )
        return
    for doc in documents:
        tags = f"  [{', '.join(doc.tags)}]" if doc.tags else ""
        expiry = f"  valid until {doc.valid_until}" if doc.valid_until else ""
        typer.echo(f"{doc.name}  {doc.chunks} chunks  {doc.title}{tags}{expiry}")
    typer.echo(f"{len(documents)} documents")
