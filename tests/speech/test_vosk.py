"""The Vosk plugin and model downloader, as far as they can be tested without a Vosk model.

No model can be fetched here, so nothing below recognises speech. What is tested for real: the
downloader against a local HTTP server (checksums, sizes, unsafe archives, network errors), the
model-directory checks in front of libvosk (and libvosk's own refusal of a corrupt model), and
the parsing of vosk's JSON results in the shapes libvosk prints them. The streaming tests drive
VoskRecognizeStream with a scripted object in place of KaldiRecognizer: they check the event
plumbing (order, timings, phrase-list swaps), not recognition.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import vosk
from livekit import rtc
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, stt
from livekit.agents.types import TimedString

from voicebot.speech import models
from voicebot.speech.models import (
    DownloadError,
    VoskModelInfo,
    download_vosk_model,
    fetch_vosk_model_list,
    vosk_model_layout_problem,
    vosk_model_supports_grammar,
)
from voicebot.speech.stt import vosk as vosk_stt
from voicebot.speech.stt.vosk import (
    VoskModelMissing,
    VoskRecognizeStream,
    VoskSTT,
    grammar_json,
    load_vosk_model,
    merge_results,
    speech_data_from_partial,
    speech_data_from_result,
)

NAME = "vosk-model-test-0.1"


# --- a local model server ---------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    return root


@pytest.fixture
def server(www: Path) -> Iterator[str]:
    """Serves ``www`` over real HTTP on loopback; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def model_files(name: str, payload: int = 300_000) -> dict[str, bytes]:
    """A model-shaped tree (not a working model): what the layout check looks for."""
    return {
        f"{name}/am/final.mdl": os.urandom(payload),
        f"{name}/conf/model.conf": b"--min-active=200\n--beam=10.0\n",
        f"{name}/conf/mfcc.conf": b"--use-energy=false\n",
        f"{name}/graph/HCLr.fst": b"fst",
        f"{name}/graph/Gr.fst": b"fst",
        f"{name}/graph/words.txt": b"<eps> 0\nyes 1\n",
        f"{name}/README": b"test model\n",
    }


def write_zip(path: Path, files: dict[str, bytes]) -> bytes:
    # Stored, not deflated: the archive stays as big as its payload, so it arrives in chunks.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    return path.read_bytes()


def write_list(www: Path, entries: list[dict[str, Any]]) -> None:
    (www / "model-list.json").write_text(json.dumps(entries), encoding="utf-8")


def list_entry(name: str, data: bytes, **changes: Any) -> dict[str, Any]:
    """An entry shaped like upstream's model-list.json (note "obsolete" is a string there)."""
    entry = {
        "lang": "en-us",
        "lang_text": "US English",
        "md5": hashlib.md5(data).hexdigest(),
        "name": name,
        "obsolete": "false",
        "size": len(data),
        "size_text": f"{len(data) / 2**20:.1f}MiB",
        "type": "small",
        "url": f"https://alphacephei.com/vosk/models/{name}.zip",
        "version": "0.1",
    }
    entry.update(changes)
    return entry


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# --- the downloader ---------------------------------------------------------------------------


def test_model_list_url_is_the_one_vosk_uses() -> None:
    assert models.MODEL_LIST_URL == vosk.MODEL_LIST_URL


def test_download_checks_the_list_md5_and_unpacks(tmp_path: Path, www: Path, server: str) -> None:
    data = write_zip(www / f"{NAME}.zip", model_files(NAME))
    write_list(www, [list_entry("vosk-model-other-0.2", b"other"), list_entry(NAME, data)])
    cache = tmp_path / "cache"
    calls: list[tuple[int, int | None]] = []

    path = download_vosk_model(
        NAME, cache, base_url=server, progress=lambda done, total: calls.append((done, total))
    )

    assert path == cache / NAME
    assert vosk_model_layout_problem(path) is None
    assert (path / "README").read_bytes() == b"test model\n"
    assert leftovers(cache) == [NAME]  # no temporary archive or staging directory left behind
    assert len(calls) > 1
    done = [d for d, _ in calls]
    assert done == sorted(set(done))
    assert calls[-1] == (len(data), len(data))
    assert {total for _, total in calls} == {len(data)}


def test_a_second_download_is_skipped(tmp_path: Path, www: Path, server: str) -> None:
    data = write_zip(www / f"{NAME}.zip", model_files(NAME))
    write_list(www, [list_entry(NAME, data)])
    cache = tmp_path / "cache"
    first = download_vosk_model(NAME, cache, base_url=server)
    for served in www.iterdir():
        served.unlink()  # a second fetch would now fail with a 404

    assert download_vosk_model(NAME, cache, base_url=server) == first


def test_a_pinned_sha256_is_used_without_the_list(tmp_path: Path, www: Path, server: str) -> None:
    data = write_zip(www / f"{NAME}.zip", model_files(NAME))
    pinned = VoskModelInfo(name=NAME, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    path = download_vosk_model(NAME, tmp_path / "cache", base_url=server, known={NAME: pinned})

    assert vosk_model_layout_problem(path) is None
    assert not (www / "model-list.json").exists()


def test_a_flat_archive_is_accepted(tmp_path: Path, www: Path, server: str) -> None:
    flat = {k.split("/", 1)[1]: v for k, v in model_files(NAME).items()}
    data = write_zip(www / f"{NAME}.zip", flat)
    write_list(www, [list_entry(NAME, data)])

    path = download_vosk_model(NAME, tmp_path / "cache", base_url=server)

    assert (path / "am" / "final.mdl").is_file()


@pytest.mark.parametrize("pin", ["md5", "sha256"])
def test_a_checksum_mismatch_leaves_nothing(
    tmp_path: Path, www: Path, server: str, pin: str
) -> None:
    data = write_zip(www / f"{NAME}.zip", model_files(NAME))
    write_list(www, [list_entry(NAME, data, md5="0" * 32)])
    known = {NAME: VoskModelInfo(name=NAME, size=len(data), sha256="0" * 64)}
    cache = tmp_path / "cache"

    with pytest.raises(DownloadError) as caught:
        download_vosk_model(NAME, cache, base_url=server, known=known if pin == "sha256" else {})

    label = "SHA-256" if pin == "sha256" else "MD5"
    assert f"{label} mismatch for {server}{NAME}.zip" in str(caught.value)
    assert "discarded" in str(caught.value)
    assert leftovers(cache) == []


def test_the_real_pinned_entries_reject_another_archive(
    tmp_path: Path, www: Path, server: str
) -> None:
    name = "vosk-model-small-en-us-0.15"
    data = write_zip(www / f"{name}.zip", model_files(name))
    cache = tmp_path / "cache"

    with pytest.raises(DownloadError) as caught:
        download_vosk_model(name, cache, base_url=server)

    assert f"gave {len(data)} bytes where 41205931 were expected" in str(caught.value)
    assert leftovers(cache) == []


def test_a_missing_archive_is_a_readable_404(tmp_path: Path, www: Path, server: str) -> None:
    write_list(www, [list_entry(NAME, b"never served")])

    with pytest.raises(DownloadError) as caught:
        download_vosk_model(NAME, tmp_path / "cache", base_url=server)

    assert str(caught.value) == (
        f"the model {NAME!r} was not found at {server}{NAME}.zip (HTTP 404)"
    )
    assert leftovers(tmp_path / "cache") == []


def test_a_name_missing_from_the_list(tmp_path: Path, www: Path, server: str) -> None:
    write_list(www, [list_entry("vosk-model-other-0.2", b"x")])

    with pytest.raises(DownloadError, match="there is no Vosk model called 'vosk-model-nope'"):
        download_vosk_model("vosk-model-nope", tmp_path / "cache", base_url=server)


def test_no_list_on_the_server_is_a_404(tmp_path: Path, server: str) -> None:
    with pytest.raises(DownloadError) as caught:
        download_vosk_model(NAME, tmp_path / "cache", base_url=server)
    assert str(caught.value) == (
        f"the Vosk model list was not found at {server}model-list.json (HTTP 404)"
    )


def test_connection_refused_says_offline(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now, so the connection is refused.

    with pytest.raises(DownloadError) as caught:
        download_vosk_model(NAME, tmp_path / "cache", base_url=f"http://127.0.0.1:{port}/")

    message = str(caught.value)
    assert message.startswith(f"could not connect to 127.0.0.1:{port} to fetch the Vosk model list")
    assert "Is this machine offline?" in message
    assert leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize("evil", ["../evil", f"{NAME}/../../evil", "/tmp/evil", "C:/evil"])
def test_an_archive_escaping_its_directory_is_refused(
    tmp_path: Path, www: Path, server: str, evil: str
) -> None:
    data = write_zip(www / f"{NAME}.zip", {**model_files(NAME, payload=10), evil: b"boom"})
    write_list(www, [list_entry(NAME, data)])
    cache = tmp_path / "cache"

    with pytest.raises(DownloadError) as caught:
        download_vosk_model(NAME, cache, base_url=server)

    assert str(caught.value) == (
        f"refusing to unpack {NAME}.zip: entry {evil!r} would be written outside the model "
        "directory"
    )
    assert not (tmp_path / "evil").exists()
    assert leftovers(cache) == []


def test_an_archive_without_a_model_is_refused(tmp_path: Path, www: Path, server: str) -> None:
    data = write_zip(www / f"{NAME}.zip", {f"{NAME}/README": b"just a readme"})
    write_list(www, [list_entry(NAME, data)])
    cache = tmp_path / "cache"

    with pytest.raises(DownloadError, match=r"does not hold a Vosk model: it has no am/final\.mdl"):
        download_vosk_model(NAME, cache, base_url=server)
    assert leftovers(cache) == []


@pytest.mark.parametrize("name", ["../up", "a/b", "", ".hidden"])
def test_a_name_that_is_not_a_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(DownloadError, match="is not a Vosk model name"):
        download_vosk_model(name, tmp_path / "cache", base_url="http://127.0.0.1:9/")


def test_fetch_model_list_reads_upstream_shapes(www: Path, server: str) -> None:
    write_list(
        www,
        [
            list_entry(NAME, b"data", size="4", type="big-lgraph"),
            {"name": "no-checksum", "size": 10},
            {"not": "a model"},
        ],
    )

    listed = fetch_vosk_model_list(f"{server}model-list.json")

    assert listed[NAME] == VoskModelInfo(
        name=NAME, size=4, md5=hashlib.md5(b"data").hexdigest(), lang="en-us", kind="big-lgraph"
    )
    assert listed[NAME].verifiable
    assert not listed["no-checksum"].verifiable
    assert set(listed) == {NAME, "no-checksum"}


# --- the model directory ----------------------------------------------------------------------


@pytest.fixture
def vosk_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if libvosk's model loader is reached."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("vosk.Model must not be called for a missing model")

    monkeypatch.setattr(vosk, "Model", refuse)
    monkeypatch.setattr(vosk_stt, "_MODELS", {})


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.mark.usefixtures("vosk_unreachable")
def test_a_missing_model_name(tmp_path: Path) -> None:
    with pytest.raises(VoskModelMissing) as caught:
        load_vosk_model("vosk-model-small-en-us-0.15", tmp_path)

    error = caught.value
    assert error.path == tmp_path / "vosk-model-small-en-us-0.15"
    assert error.reason == "the directory does not exist"
    assert str(error) == (
        "Vosk model 'vosk-model-small-en-us-0.15' is not usable: the directory does not exist "
        f"(looked for {tmp_path / 'vosk-model-small-en-us-0.15'}). Run `voicebot models "
        "download vosk-model-small-en-us-0.15` on a machine with internet access (it unpacks "
        f"into {models.DEFAULT_VOSK_DIR} unless told otherwise) and copy the model directory "
        f"to {tmp_path / 'vosk-model-small-en-us-0.15'}, or point the model setting at an "
        "unpacked Vosk model. Until then voicebot falls back to the offline pocketsphinx "
        "recogniser."
    )


@pytest.mark.usefixtures("vosk_unreachable")
def test_an_empty_directory(tmp_path: Path) -> None:
    empty = tmp_path / "models" / "my-model"
    empty.mkdir(parents=True)

    with pytest.raises(VoskModelMissing) as caught:
        load_vosk_model(str(empty), tmp_path / "cache")

    message = str(caught.value)
    assert message.startswith(
        f"Vosk model {str(empty)!r} is not usable: it has no am/final.mdl, so it is not an "
        f"unpacked Vosk model (looked for {empty})."
    )
    assert "`voicebot models download vosk-model-small-en-us-0.15`" in message
    assert "falls back to the offline pocketsphinx recogniser" in message


@pytest.mark.usefixtures("vosk_unreachable")
def test_a_model_unpacked_one_level_too_deep(tmp_path: Path) -> None:
    make_tree(tmp_path / "outer", model_files("vosk-model-small-en-us-0.15", payload=1))

    with pytest.raises(VoskModelMissing) as caught:
        load_vosk_model(str(tmp_path / "outer"), tmp_path)

    assert caught.value.reason == (
        f"it has no am/final.mdl, but {tmp_path / 'outer' / 'vosk-model-small-en-us-0.15'} "
        "looks like the model itself"
    )


@pytest.mark.usefixtures("vosk_unreachable")
def test_an_incomplete_model(tmp_path: Path) -> None:
    make_tree(tmp_path / NAME, {"am/final.mdl": b"x"})

    with pytest.raises(VoskModelMissing) as caught:
        load_vosk_model(NAME, tmp_path)

    assert caught.value.reason == (
        "it is incomplete: missing conf/model.conf, conf/mfcc.conf, "
        "graph/HCLG.fst (or HCLr.fst and Gr.fst)"
    )


@pytest.mark.usefixtures("vosk_unreachable")
def test_a_zip_given_as_the_model(tmp_path: Path) -> None:
    archive = tmp_path / f"{NAME}.zip"
    archive.write_bytes(b"PK")
    with pytest.raises(VoskModelMissing, match=r"it is a file, not a directory"):
        load_vosk_model(str(archive), tmp_path)


def test_libvosk_refusing_a_corrupt_model_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real libvosk on a model-shaped directory of garbage: it fails to read am/final.mdl
    # (logging an ERROR line to stderr) and returns no model, which must not crash or be cached.
    monkeypatch.setattr(vosk_stt, "_MODELS", {})
    make_tree(tmp_path / NAME, {k.split("/", 1)[1]: b"" for k in model_files(NAME)})

    with pytest.raises(VoskModelMissing) as caught:
        load_vosk_model(NAME, tmp_path)

    assert caught.value.reason == (
        "vosk could not load it (Failed to create a model); the files may be corrupt or truncated"
    )
    assert vosk_stt._MODELS == {}


def test_one_model_per_directory_with_vosk_model_stubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests the process-wide cache and its lock, not vosk: the loader is replaced by a counter.
    loads: list[str] = []

    def fake_model(path: str) -> object:
        loads.append(path)
        return object()

    monkeypatch.setattr(vosk, "Model", fake_model)
    monkeypatch.setattr(vosk_stt, "_MODELS", {})
    model_dir = make_tree(tmp_path / NAME, {k.split("/", 1)[1]: b"" for k in model_files(NAME)})
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(load_vosk_model(NAME, tmp_path)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    results.append(load_vosk_model(str(model_dir), tmp_path / "elsewhere"))
    assert loads == [str(model_dir.resolve())]
    assert len(results) == 9
    assert all(r is results[0] for r in results)


@pytest.mark.parametrize(
    ("graph", "supported"),
    [
        ({"graph/HCLr.fst", "graph/Gr.fst"}, True),
        ({"graph/HCLG.fst"}, False),
        ({"graph/HCLG.fst", "graph/HCLr.fst", "graph/Gr.fst"}, False),
    ],
)
def test_grammar_support_follows_the_graph(
    tmp_path: Path, graph: set[str], supported: bool
) -> None:
    base = {"am/final.mdl", "conf/model.conf", "conf/mfcc.conf"}
    make_tree(tmp_path, dict.fromkeys(base | graph, b""))

    assert vosk_model_layout_problem(tmp_path) is None
    assert vosk_model_supports_grammar(tmp_path) is supported


# --- vosk's JSON results ----------------------------------------------------------------------

# As libvosk prints them (its JSON writer's spacing, six decimals).
RESULT = """{
  "result" : [{
      "conf" : 1.000000,
      "end" : 1.110000,
      "start" : 0.870000,
      "word" : "one"
    }, {
      "conf" : 0.500000,
      "end" : 1.530000,
      "start" : 1.110000,
      "word" : "zero"
    }],
  "text" : "one zero"
}"""
PARTIAL = """{
  "partial" : "one zero",
  "partial_result" : [{
      "conf" : 1.000000,
      "end" : 1.110000,
      "start" : 0.870000,
      "word" : "one"
    }, {
      "conf" : 1.000000,
      "end" : 1.410000,
      "start" : 1.110000,
      "word" : "zero"
    }]
}"""


def test_a_final_result_with_words() -> None:
    data = speech_data_from_result(json.loads(RESULT), language="en-US", offset=10.0)

    assert data is not None
    assert data.text == "one zero"
    assert data.language == "en-US"
    assert data.start_time == pytest.approx(10.87)
    assert data.end_time == pytest.approx(11.53)
    assert data.confidence == pytest.approx(0.75)
    assert data.words is not None
    assert [str(w) for w in data.words] == ["one", "zero"]
    second = data.words[1]
    assert isinstance(second, TimedString)
    assert second.start_time == pytest.approx(11.11)
    assert second.end_time == pytest.approx(11.53)
    assert second.confidence == pytest.approx(0.5)
    assert second.start_time_offset == 10.0


def test_a_partial_with_words_and_without() -> None:
    data = speech_data_from_partial(json.loads(PARTIAL), language="en-US", offset=0.5)
    assert data is not None
    assert data.text == "one zero"
    assert data.end_time == pytest.approx(1.91)
    assert data.words is not None and len(data.words) == 2

    bare = speech_data_from_partial(json.loads('{\n  "partial" : "one"\n}'), language="en-US")
    assert bare is not None
    assert (bare.text, bare.words, bare.confidence) == ("one", None, 0.0)


@pytest.mark.parametrize(
    "raw", ['{\n  "text" : ""\n}', '{"text": ""}', '{\n  "partial" : ""\n}', "{}"]
)
def test_empty_results_are_none(raw: str) -> None:
    result = json.loads(raw)
    assert speech_data_from_result(result, language="en-US") is None
    assert speech_data_from_partial(result, language="en-US") is None


def test_an_out_of_grammar_result_keeps_unk() -> None:
    raw = '{"result": [{"conf": 0.61, "end": 0.9, "start": 0.3, "word": "[unk]"}], "text": "[unk]"}'
    data = speech_data_from_result(json.loads(raw), language="en-US")
    assert data is not None
    assert data.text == "[unk]"


def test_merge_results_joins_utterances() -> None:
    first = json.loads(RESULT)
    second = {"result": [{"conf": 1.0, "end": 3.2, "start": 2.9, "word": "two"}], "text": "two"}
    merged = merge_results([first, {"text": ""}, second])

    assert merged["text"] == "one zero two"
    data = speech_data_from_result(merged, language="en-US")
    assert data is not None
    assert (data.start_time, data.end_time) == (0.87, 3.2)
    assert merge_results([{"text": ""}]) == {"text": ""}


def test_grammar_json() -> None:
    phrases = ["Yes, please!", "no", "NO", "  pay   my bill ", "[unk]", "don't know", "?!"]
    assert json.loads(grammar_json(phrases) or "") == [
        "yes please",
        "no",
        "pay my bill",
        "don't know",
        "[unk]",
    ]
    assert grammar_json([]) is None
    assert grammar_json(None) is None
    assert grammar_json(["...", "[unk]"]) is None


# --- the stream's event plumbing, with a scripted recogniser ---------------------------------


class ScriptedRecognizer:
    """Answers each AcceptWaveform with the next scripted (endpoint, JSON). Not a recogniser."""

    def __init__(self, steps: list[tuple[bool, dict[str, Any]]], finals: list[dict[str, Any]]):
        self.steps = list(steps)
        self.finals = list(finals)
        self.fed: list[int] = []
        self._last = {"partial": ""}
        self._fed_changed = threading.Condition()

    def wait_fed(self, count: int, timeout: float) -> bool:
        """Blocks until ``count`` chunks have been fed (the stream feeds from worker threads)."""
        with self._fed_changed:
            return self._fed_changed.wait_for(lambda: len(self.fed) >= count, timeout)

    def AcceptWaveform(self, data: bytes) -> int:
        with self._fed_changed:
            self.fed.append(len(data))
            self._fed_changed.notify_all()
        endpoint, self._last = self.steps.pop(0) if self.steps else (False, {"partial": ""})
        return int(endpoint)

    def Result(self) -> str:
        return json.dumps(self._last)

    def PartialResult(self) -> str:
        return json.dumps(self._last)

    def FinalResult(self) -> str:
        return json.dumps(self.finals.pop(0) if self.finals else {"text": ""})


def partial(text: str) -> tuple[bool, dict[str, Any]]:
    return False, {"partial": text}


def final(*words: tuple[str, float, float]) -> dict[str, Any]:
    return {
        "result": [{"conf": 1.0, "end": e, "start": s, "word": w} for w, s, e in words],
        "text": " ".join(w for w, _, _ in words),
    }


def push_silence(stream: VoskRecognizeStream, seconds: float, rate: int = 16000) -> None:
    samples = rate // 100  # 10 ms frames, as livekit delivers them
    for _ in range(round(seconds * 100)):
        stream.push_frame(rtc.AudioFrame(b"\0\0" * samples, rate, 1, samples))


def scripted_stream(
    factory: Any, tmp_path: Path
) -> tuple[VoskRecognizeStream, asyncio.Task[list[stt.SpeechEvent]]]:
    plugin = VoskSTT(model=str(tmp_path / "no-model"))
    stream = VoskRecognizeStream(
        stt=plugin,
        conn_options=DEFAULT_API_CONNECT_OPTIONS,
        language="en-US",
        recognizer_factory=factory,
    )

    async def collect() -> list[stt.SpeechEvent]:
        return [event async for event in stream]

    return stream, asyncio.ensure_future(collect())


def summary(events: list[stt.SpeechEvent]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for ev in events:
        if ev.type == stt.SpeechEventType.RECOGNITION_USAGE:
            assert ev.recognition_usage is not None
            out.append(("usage", round(ev.recognition_usage.audio_duration, 3)))
        else:
            out.append((ev.type.value, ev.alternatives[0].text if ev.alternatives else None))
    return out


async def test_event_plumbing_endpoint_flush_and_end(tmp_path: Path) -> None:
    recognizer = ScriptedRecognizer(
        steps=[
            partial(""),
            partial("one"),
            partial("one two"),
            partial("one two"),
            (True, final(("one", 0.12, 0.3), ("two", 0.31, 0.5))),
            partial(""),
            partial("three"),
        ],
        finals=[final(("three", 0.61, 0.69)), {"text": ""}],
    )
    stream, collected = scripted_stream(lambda phrases: recognizer, tmp_path)

    push_silence(stream, 0.7)
    stream.flush()
    push_silence(stream, 0.1)
    stream.end_input()
    events = await asyncio.wait_for(collected, 10)

    assert summary(events) == [
        ("start_of_speech", None),
        ("interim_transcript", "one"),
        ("interim_transcript", "one two"),
        ("final_transcript", "one two"),
        ("end_of_speech", None),
        ("start_of_speech", None),
        ("interim_transcript", "three"),
        ("final_transcript", "three"),
        ("end_of_speech", None),
        ("usage", 0.7),
        # the flush at the end heard nothing: an empty final answers it
        ("final_transcript", ""),
        ("usage", 0.1),
    ]
    assert recognizer.fed == [3200] * 8  # 100 ms chunks of 16 kHz 16-bit audio
    words = events[3].alternatives[0].words
    assert words is not None
    assert words[1].start_time == pytest.approx(stream.start_time_offset + 0.31)
    assert events[3].request_id != events[7].request_id


async def test_event_plumbing_phrase_swap_replays_recent_audio(tmp_path: Path) -> None:
    first = ScriptedRecognizer(steps=[], finals=[])
    second = ScriptedRecognizer(steps=[partial(""), (True, final(("yes", 0.05, 0.25)))], finals=[])
    made: list[tuple[str, ...]] = []

    def factory(phrases: tuple[str, ...]) -> ScriptedRecognizer:
        made.append(phrases)
        return first if len(made) == 1 else second

    stream, collected = scripted_stream(factory, tmp_path)
    push_silence(stream, 1.5)
    assert await asyncio.to_thread(first.wait_fed, 15, 10.0)
    stream.update_phrases(["Yes", "No"])
    push_silence(stream, 0.1)
    stream.end_input()
    events = await asyncio.wait_for(collected, 10)

    assert made == [(), ("yes", "no")]
    assert first.fed == [3200] * 15
    assert second.fed == [32000, 3200]  # the last second again, then the new chunk
    finals = [e for e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    assert [f.alternatives[0].text for f in finals] == ["yes", ""]
    words = finals[0].alternatives[0].words
    assert words is not None
    # The new recogniser's clock starts 1.0 s before the end of the 1.5 s of audio.
    assert words[0].start_time == pytest.approx(stream.start_time_offset + 0.5 + 0.05)


async def test_event_plumbing_8khz_input_reaches_the_recogniser_at_16khz(tmp_path: Path) -> None:
    recognizer = ScriptedRecognizer(steps=[], finals=[])
    stream, collected = scripted_stream(lambda phrases: recognizer, tmp_path)

    push_silence(stream, 1.0, rate=8000)
    stream.end_input()
    events = await asyncio.wait_for(collected, 10)

    # One second of telephony audio, resampled by livekit to the recogniser's 16 kHz.
    assert abs(sum(recognizer.fed) - 32000) <= 64
    assert all(n == 3200 for n in recognizer.fed[:-1])
    assert summary(events)[-2:] == [
        ("final_transcript", ""),
        ("usage", pytest.approx(1.0, abs=0.01)),
    ]


def test_batch_audio_is_mixed_down_and_resampled() -> None:
    left_right = np.tile(np.array([1000, 3000], dtype=np.int16), 800)  # 0.1 s of 8 kHz stereo
    frame = rtc.AudioFrame(left_right.tobytes(), 8000, 2, 800)

    pcm = vosk_stt._buffer_pcm([frame], 16000)

    samples = np.frombuffer(pcm, dtype=np.int16)
    assert abs(len(samples) - 1600) <= 8
    assert np.all(np.abs(samples[400:1200].astype(int) - 2000) <= 20)  # the mean of both channels
    assert vosk_stt._buffer_pcm([], 16000) == b""


# --- with no model on disk --------------------------------------------------------------------


async def test_a_stream_without_its_model_fails_with_the_reason(tmp_path: Path) -> None:
    plugin = VoskSTT(model=NAME, cache_dir=tmp_path, phrases=["yes"])
    plugin.update_phrases(["yes", "no"])
    assert plugin.phrases == ("yes", "no")
    stream = plugin.stream()
    push_silence(stream, 0.2)

    with pytest.raises(VoskModelMissing, match=r"voicebot models download vosk-model-test-0\.1"):
        async for _ in stream:
            pass
    await stream.aclose()


async def test_batch_recognition_without_its_model(tmp_path: Path) -> None:
    plugin = VoskSTT(model=NAME, cache_dir=tmp_path)
    frame = rtc.AudioFrame(b"\0\0" * 800, 8000, 1, 800)

    with pytest.raises(VoskModelMissing, match="the directory does not exist"):
        await plugin.recognize([frame])
