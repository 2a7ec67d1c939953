"""Where a call's recordings are on this server: ``<recordings_dir>/<call id>/``, one audio
file per segment (LiveKit Egress writes OGG; a two-channel WAV from a softphone or a test is
read the same way). The supervisor page lists and plays them; quality checks read them."""

from __future__ import annotations

import re
from pathlib import Path

AUDIO_TYPES = {".ogg": "audio/ogg", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4"}
# Call ids and file names are used as path parts: anything but these characters is refused,
# so a crafted id can never reach outside the recordings folder.
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def safe_name(name: str) -> bool:
    return bool(_SAFE.match(name)) and ".." not in name


def recording_files(root: Path, call_id: str) -> list[Path]:
    """The call's recording files, in name (segment) order; none when there are none."""
    if not safe_name(call_id):
        return []
    folder = root / call_id
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in AUDIO_TYPES and safe_name(path.name)
    )


def recording_file(root: Path, call_id: str, name: str) -> Path | None:
    """One named recording of the call, or None (also for any name that is not plainly one)."""
    for path in recording_files(root, call_id):
        if path.name == name:
            return path
    return None
