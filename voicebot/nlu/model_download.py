"""Fetches the all-MiniLM-L6-v2 ONNX export, for machines that have internet.

The archive is the one Chroma's default embedding function downloads, checked against the same
SHA-256, and unpacked where Chroma looks for it, so voicebot and Chroma share one copy.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

MODEL_URL = "https://chroma-onnx-models.s3.amazonaws.com/all-MiniLM-L6-v2/onnx.tar.gz"
MODEL_SHA256 = "913d7300ceae3b2dbc2c50d1de4baacab4be7b9380491c27fab7418616a16ec3"
DEFAULT_TARGET = Path.home() / ".cache" / "chroma" / "onnx_models" / "all-MiniLM-L6-v2"


class DownloadError(RuntimeError):
    pass


def download_embedder(
    target: Path = DEFAULT_TARGET,
    *,
    url: str = MODEL_URL,
    sha256: str = MODEL_SHA256,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download, verify and unpack into ``target/onnx``; returns ``target``."""
    if (target / "onnx" / "model.onnx").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target, suffix=".tar.gz", delete=False) as tmp:
        archive = Path(tmp.name)
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length", 0)) or None
                done = 0
                for chunk in response.iter_bytes(1 << 16):
                    tmp.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except httpx.HTTPError as exc:
            archive.unlink(missing_ok=True)
            raise DownloadError(f"could not download {url}: {exc}") from None
    try:
        if digest.hexdigest() != sha256:
            raise DownloadError(f"checksum mismatch for {url}; the file was discarded")
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target, filter="data")
    finally:
        archive.unlink(missing_ok=True)
    if not (target / "onnx" / "model.onnx").is_file():
        raise DownloadError(f"the archive did not contain onnx/model.onnx (in {target})")
    return target
