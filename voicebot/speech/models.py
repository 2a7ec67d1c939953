"""Vosk speech models on disk: what a usable model directory looks like, and a downloader.

Vosk publishes its models as zip archives at https://alphacephei.com/vosk/models/, with a
catalogue (``model-list.json``, the same list the ``vosk`` package's own downloader reads) that
gives each archive's name, size and MD5. The archives are unpacked into ``<cache>/<name>``; the
default cache is ``~/.cache/vosk``, one of the folders the ``vosk`` package itself searches, so
voicebot and vosk share one copy.

Checksums: the models in :data:`VOSK_MODELS` with a ``sha256`` are pinned to a SHA-256 of the
official archive (and its exact size). Upstream publishes only MD5, so every other model, named
in the table without a hash or not named at all, is checked against the MD5 and size in the
catalogue at download time. MD5 catches a corrupt or truncated transfer; it is not proof against
a deliberately swapped archive the way SHA-256 is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit

import httpx

from voicebot.nlu.model_download import DownloadError as _BaseDownloadError

__all__ = [
    "DEFAULT_VOSK_DIR",
    "MODEL_BASE_URL",
    "MODEL_LIST_URL",
    "VOSK_MODELS",
    "DownloadError",
    "VoskModelInfo",
    "download_vosk_model",
    "fetch_vosk_model_list",
    "vosk_model_layout_problem",
    "vosk_model_supports_grammar",
]

logger = logging.getLogger(__name__)

MODEL_BASE_URL = "https://alphacephei.com/vosk/models/"
# The same catalogue ``vosk.MODEL_LIST_URL`` names (a test keeps the two in step).
MODEL_LIST_URL = MODEL_BASE_URL + "model-list.json"
# One of the folders ``vosk.Model(model_name=...)`` searches, so a model either side fetched is
# found by the other.
DEFAULT_VOSK_DIR = Path.home() / ".cache" / "vosk"

# The largest models unpack to a few GB; anything claiming far more is not a Vosk model.
_MAX_UNPACKED_BYTES = 16 * 1024**3
_CHUNK = 1 << 16
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class DownloadError(_BaseDownloadError):
    """A model could not be fetched, checked or unpacked; the message says why and what to do.

    It subclasses the embedder downloader's error so ``voicebot models download`` handles every
    model's failures with one ``except``.
    """


@dataclass(frozen=True)
class VoskModelInfo:
    """One downloadable Vosk model and what its archive must match.

    ``kind`` is the catalogue's ``type``: ``"small"`` and ``"big-lgraph"`` models take a runtime
    phrase list (grammar); ``"big"`` ones have a static graph and ignore it.
    """

    name: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    lang: str | None = None
    kind: str | None = None

    @property
    def verifiable(self) -> bool:
        """True when the archive can be checked: a size and at least one digest are known."""
        return self.size is not None and (self.sha256 is not None or self.md5 is not None)


VOSK_MODELS: dict[str, VoskModelInfo] = {
    # ~40 MB, runs anywhere, accepts a phrase list: the default.
    "vosk-model-small-en-us-0.15": VoskModelInfo(
        name="vosk-model-small-en-us-0.15",
        size=41_205_931,
        sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
        lang="en-us",
        kind="small",
    ),
    # ~128 MB, noticeably more accurate, still accepts a phrase list.
    "vosk-model-en-us-0.22-lgraph": VoskModelInfo(
        name="vosk-model-en-us-0.22-lgraph",
        size=130_557_655,
        sha256="d9838b4aaa82a75c4a17f5aca300eaca129aaab2a7cbf951bafbb500eb9c4334",
        lang="en-us",
        kind="big-lgraph",
    ),
    # 1.8 GB server model (static graph: no phrase list). Upstream's own MD5 and size.
    "vosk-model-en-us-0.22": VoskModelInfo(
        name="vosk-model-en-us-0.22",
        size=1_913_365_522,
        md5="228741ed058893e403dce60bdd659f42",
        lang="en-us",
        kind="big",
    ),
    # No pinned digest: checked against the catalogue's MD5 and size when downloaded.
    "vosk-model-small-en-in-0.4": VoskModelInfo(
        name="vosk-model-small-en-in-0.4", lang="en-in", kind="small"
    ),
    "vosk-model-small-en-gb-0.15": VoskModelInfo(
        name="vosk-model-small-en-gb-0.15", lang="en-gb", kind="small"
    ),
}


# --- what a model directory holds -------------------------------------------------------------


def vosk_model_layout_problem(path: Path) -> str | None:
    """Why ``path`` is not an unpacked Vosk model, or None when it has the files vosk reads.

    Mirrors the checks libvosk's ``Model`` constructor makes (both the current ``am/ conf/
    graph/`` layout and the old flat one), so a missing model is reported in Python instead of
    as an error from inside the C library.
    """
    if not path.exists():
        return "the directory does not exist"
    if not path.is_dir():
        return "it is a file, not a directory (a .zip must be unpacked first)"
    if (path / "am" / "final.mdl").is_file():
        required = [path / "conf" / "model.conf", path / "conf" / "mfcc.conf"]
        graph = path / "graph"
    elif (path / "final.mdl").is_file():
        required = [path / "mfcc.conf"]
        graph = path
    else:
        nested = [p for p in _subdirs(path) if vosk_model_layout_problem(p) is None]
        if nested:
            return f"it has no am/final.mdl, but {nested[0]} looks like the model itself"
        return "it has no am/final.mdl, so it is not an unpacked Vosk model"
    missing = [str(p.relative_to(path)) for p in required if not p.is_file()]
    if not _has_static_graph(graph) and not _has_runtime_graph(graph):
        missing.append(str((graph / "HCLG.fst").relative_to(path)) + " (or HCLr.fst and Gr.fst)")
    if missing:
        return "it is incomplete: missing " + ", ".join(missing)
    return None


def vosk_model_supports_grammar(path: Path) -> bool:
    """True when the model decodes with a runtime graph and so honours a phrase list.

    libvosk loads ``HCLG.fst`` when it exists (a static graph; a grammar is then ignored with
    a warning) and composes ``HCLr.fst`` with ``Gr.fst`` otherwise.
    """
    graph = path / "graph" if (path / "am" / "final.mdl").is_file() else path
    return not _has_static_graph(graph) and _has_runtime_graph(graph)


def _has_static_graph(graph: Path) -> bool:
    return (graph / "HCLG.fst").is_file()


def _has_runtime_graph(graph: Path) -> bool:
    return (graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file()


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except OSError:
        return []


# --- the catalogue ----------------------------------------------------------------------------


def fetch_vosk_model_list(
    list_url: str = MODEL_LIST_URL, *, timeout: float = 30.0
) -> dict[str, VoskModelInfo]:
    """Upstream's catalogue (``model-list.json``) by model name. Raises :class:`DownloadError`."""
    try:
        with httpx.Client(follow_redirects=True, timeout=timeout) as client:
            response = client.get(list_url)
            response.raise_for_status()
            entries = response.json()
    except httpx.HTTPError as exc:
        raise DownloadError(_describe_http_error(exc, list_url, "the Vosk model list")) from None
    except json.JSONDecodeError:
        raise DownloadError(f"the Vosk model list at {list_url} is not JSON") from None
    if not isinstance(entries, list):
        raise DownloadError(f"the Vosk model list at {list_url} is not a JSON array")
    models: dict[str, VoskModelInfo] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            info = _info_from_list_entry(entry)
            models[info.name] = info
    return models


def _info_from_list_entry(entry: Mapping[str, Any]) -> VoskModelInfo:
    size = entry.get("size")
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    md5 = entry.get("md5")
    return VoskModelInfo(
        name=str(entry["name"]),
        size=size if isinstance(size, int) and size > 0 else None,
        md5=md5.lower() if isinstance(md5, str) and re.fullmatch(r"[0-9a-fA-F]{32}", md5) else None,
        lang=str(entry["lang"]) if entry.get("lang") else None,
        kind=str(entry["type"]) if entry.get("type") else None,
    )


# --- the download -----------------------------------------------------------------------------


def download_vosk_model(
    name: str,
    cache_dir: Path = DEFAULT_VOSK_DIR,
    *,
    base_url: str = MODEL_BASE_URL,
    list_url: str | None = None,
    known: Mapping[str, VoskModelInfo] = VOSK_MODELS,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``<base_url>/<name>.zip``, verify it, unpack it to ``cache_dir/<name>``; return that.

    Does nothing when the model is already there. The archive is checked against the SHA-256
    pinned in ``known`` when there is one, else against the MD5 and size in the catalogue at
    ``list_url`` (default: ``model-list.json`` beside ``base_url``). ``progress(done, total)`` is
    called as bytes arrive (``total`` is None when the size is unknown). On any failure the
    partial download is removed and :class:`DownloadError` says what went wrong.
    """
    if not _NAME_RE.match(name) or ".." in name:
        raise DownloadError(f"{name!r} is not a Vosk model name (like vosk-model-small-en-us-0.15)")
    cache_dir = cache_dir.expanduser()
    target = cache_dir / name
    if vosk_model_layout_problem(target) is None:
        logger.info("vosk model already present", extra={"path": str(target)})
        return target
    if target.exists():
        raise DownloadError(
            f"{target} exists but is not a usable Vosk model "
            f"({vosk_model_layout_problem(target)}); move it away and download again"
        )
    base = base_url.rstrip("/") + "/"
    info = known.get(name)
    if info is None or not info.verifiable:
        catalogue = fetch_vosk_model_list(list_url or base + "model-list.json", timeout=timeout)
        listed = catalogue.get(name)
        if listed is None:
            raise DownloadError(
                f"there is no Vosk model called {name!r} in the model list; "
                f"see {MODEL_BASE_URL} for the names"
            )
        if not listed.verifiable:
            raise DownloadError(
                f"the model list gives no checksum and size for {name!r}, "
                "so a download could not be verified"
            )
        info = listed
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = f"{base}{name}.zip"
    archive = _fetch_verified(url, name, info, cache_dir, progress=progress, timeout=timeout)
    try:
        return _install(archive, target)
    finally:
        archive.unlink(missing_ok=True)


def _fetch_verified(
    url: str,
    name: str,
    info: VoskModelInfo,
    cache_dir: Path,
    *,
    progress: Callable[[int, int | None], None] | None,
    timeout: float,
) -> Path:
    """Stream ``url`` into a hidden temporary file in ``cache_dir`` and check it; return it."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    # Hidden and suffixed, so a leftover from a killed process is never mistaken for a model.
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept on success
        dir=cache_dir, prefix=f".{name}-", suffix=".zip.part", delete=False
    )
    archive = Path(handle.name)
    done = 0
    try:
        with handle:
            try:
                with (
                    httpx.Client(follow_redirects=True, timeout=timeout) as client,
                    client.stream("GET", url) as response,
                ):
                    response.raise_for_status()
                    header = response.headers.get("content-length", "")
                    total = info.size or (int(header) if header.isdigit() else None)
                    for chunk in response.iter_bytes(_CHUNK):
                        handle.write(chunk)
                        sha256.update(chunk)
                        md5.update(chunk)
                        done += len(chunk)
                        if info.size is not None and done > info.size:
                            raise DownloadError(
                                f"{url} is larger than the {info.size} bytes expected; "
                                "the download was stopped and discarded"
                            )
                        if progress is not None:
                            progress(done, total)
            except httpx.HTTPError as exc:
                raise DownloadError(_describe_http_error(exc, url, f"the model {name!r}")) from None
        if info.size is not None and done != info.size:
            raise DownloadError(
                f"{url} gave {done} bytes where {info.size} were expected; "
                "the download was incomplete and has been discarded"
            )
        if info.sha256 is not None and sha256.hexdigest() != info.sha256.lower():
            raise DownloadError(
                f"SHA-256 mismatch for {url} (expected {info.sha256}, got {sha256.hexdigest()}); "
                "the file was discarded"
            )
        if info.sha256 is None and info.md5 is not None and md5.hexdigest() != info.md5.lower():
            raise DownloadError(
                f"MD5 mismatch for {url} (expected {info.md5}, got {md5.hexdigest()}); "
                "the file was discarded"
            )
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
    return archive


def _install(archive: Path, target: Path) -> Path:
    """Unpack a verified archive beside ``target`` and move the model into place atomically."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = _safe_members(zf, f"{target.name}.zip")
                zf.extractall(staging, members=members)
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{target.name}.zip is not a valid zip archive: {exc}") from None
        # Vosk archives hold one top-level folder named after the model; accept a flat one too.
        entries = list(staging.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        problem = vosk_model_layout_problem(root)
        if problem is not None:
            raise DownloadError(
                f"the archive for {target.name} does not hold a Vosk model: {problem}"
            )
        try:
            os.replace(root, target)
        except OSError:
            # Someone else (another process) installed it while we downloaded: keep theirs.
            if vosk_model_layout_problem(target) is None:
                return target
            raise
        logger.info("vosk model installed", extra={"path": str(target)})
        return target
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)


def _safe_members(zf: zipfile.ZipFile, label: str) -> list[zipfile.ZipInfo]:
    """Every entry, after refusing any that could write outside the extraction directory."""
    members = zf.infolist()
    total = 0
    for info in members:
        name = info.filename
        parts = re.split(r"[\\/]+", name)
        if (
            PurePosixPath(name).is_absolute()
            or PureWindowsPath(name).is_absolute()
            or PureWindowsPath(name).drive
            or name.startswith(("/", "\\"))
            or ".." in parts
        ):
            raise DownloadError(
                f"refusing to unpack {label}: entry {name!r} would be written outside "
                "the model directory"
            )
        mode = info.external_attr >> 16
        if mode & 0o170000 == 0o120000:
            raise DownloadError(f"refusing to unpack {label}: entry {name!r} is a symlink")
        total += info.file_size
    if total > _MAX_UNPACKED_BYTES:
        raise DownloadError(f"refusing to unpack {label}: it would expand to {total} bytes")
    return members


def _describe_http_error(exc: httpx.HTTPError, url: str, what: str) -> str:
    host = urlsplit(url).netloc or url
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status == 404:
            return f"{what} was not found at {url} (HTTP 404)"
        return f"{host} refused {what}: HTTP {status} {exc.response.reason_phrase} for {url}"
    if isinstance(exc, httpx.ConnectError):
        return (
            f"could not connect to {host} to fetch {what} ({exc or 'connection failed'}). "
            "Is this machine offline? Run `voicebot models download` where there is internet "
            "and copy the unpacked model directory here."
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"{host} did not answer in time while fetching {what} ({type(exc).__name__})"
    return f"could not fetch {what} from {url}: {exc or type(exc).__name__}"
