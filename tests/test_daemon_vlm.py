"""The daemon with a vision model installed (the tiny SmolVLM, exported by the user-facing exporter).

Asserts what reaches the model (prompt tokens: the question, the screen's text as grounding, the
earlier turns) and what the user hears (the model's own tokens, decoded, spoken), plus the fallback
to the text reader, said aloud, when the bundle is damaged.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from tiny import tiny_smolvlm_bundle

from describe_screen import vlm
from describe_screen.config import Config
from describe_screen.daemon import Daemon
from describe_screen.speech import Speaker

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp()
    tiny_smolvlm_bundle(root)
    return root / "models"


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> Path:
    image = Image.new("RGB", (640, 360), "white")
    draw = ImageDraw.Draw(image)
    draw.text((40, 40), "Sign up for the newsletter", fill="black", font=ImageFont.truetype(FONT, 28))
    draw.rectangle((40, 200, 200, 250), outline="black", width=2)
    draw.text((70, 210), "Submit", fill="black", font=ImageFont.truetype(FONT, 24))
    path = tmp_path_factory.mktemp("screen") / "form.png"
    image.save(path)
    return path


def make_daemon(models: Path, tmp_path: Path) -> Daemon:
    config = Config()
    config.models.dir = str(models)
    config.models.max_new_tokens = 8
    config.speech.cues = False
    return Daemon(config, Speaker(config.speech, tmp_path / "speech.wav"))


class PromptSpy:
    """Records the prompt token ids the model builds, and still builds them with the real code."""

    def __init__(self, model) -> None:
        self.prompts: list[str] = []
        real = model.prompt_ids

        def prompt_ids(request, tiles):
            ids = real(request, tiles)
            self.prompts.append(model.tokenizer.decode(ids, skip_special_tokens=False))
            return ids

        model.prompt_ids = prompt_ids


def test_question_and_grounding_reach_the_model_and_its_answer_is_spoken(models_dir, screen, tmp_path):
    daemon = make_daemon(models_dir, tmp_path)
    model = daemon.describer.model(vlm.ASK)
    assert model is not None and model.name == "tiny-smolvlm"
    spy = PromptSpy(model)

    final = daemon.handle({"cmd": "ask", "image": str(screen), "question": "Is there a Submit button?"})
    daemon.speaker.wait_idle(60)
    assert final["event"] == "done", final
    answer = final["result"]["text"]
    # the model's own greedy answer, computed independently, is what was said
    request = vlm.Request(task=vlm.ASK, question="Is there a Submit button?",
                          grounding=" ".join(line.text for line in daemon.scene.lines))
    expected = "".join(model.stream(Image.open(screen).convert("RGB"), request, lambda: False)).strip()
    assert answer == expected and answer
    assert " ".join(daemon.speaker.spoken).replace(" ", "") == answer.replace(" ", "")
    prompt = spy.prompts[0]
    assert "Is there a Submit button?" in prompt
    assert "Sign up for the newsletter" in prompt and "Submit" in prompt  # OCR grounding

    # a follow-up sees the first turn
    daemon.handle({"cmd": "ask", "question": "What is it for?"})
    follow = spy.prompts[-1]
    assert "Is there a Submit button?" in follow and "What is it for?" in follow
    assert answer.split()[0] in follow
    daemon.speaker.close()


def test_tasks_share_one_loaded_model_and_text_engine_uses_none(models_dir, tmp_path):
    daemon = make_daemon(models_dir, tmp_path)
    describer = daemon.describer
    assert describer.model(vlm.CAPTION_BRIEF) is describer.model(vlm.ASK) is describer.model(vlm.CAPTION_FULL)
    fresh = make_daemon(models_dir, tmp_path)
    fresh.config.describe.engine = "text"
    assert fresh.describer.model(vlm.ASK) is None and fresh.describer.model(vlm.CAPTION_BRIEF) is None
    daemon.speaker.close()
    fresh.speaker.close()


def test_describe_leads_with_screen_text_then_the_caption(models_dir, screen, tmp_path):
    daemon = make_daemon(models_dir, tmp_path)
    final = daemon.handle({"cmd": "describe", "image": str(screen)})
    daemon.speaker.wait_idle(60)
    daemon.speaker.close()
    text = final["result"]["text"]
    assert " ".join(daemon.speaker.spoken).replace(" ", "") == text.replace(" ", "")
    assert text.startswith("Sign up for the newsletter.")
    assert len(text) > len("Sign up for the newsletter.") + 1  # the model's caption follows


def test_broken_bundles_are_noted_once_briefly_after_the_answer(models_dir, screen, tmp_path):
    """Nine bundles with cut graphs: the text reader answers first, then one short sentence names them
    all and where the reasons are; the next answer carries no note."""
    broken = tmp_path / "models"
    for n in range(1, 10):
        shutil.copytree(models_dir / "tiny-smolvlm", broken / f"tiny-{n}")
        for decoder in (broken / f"tiny-{n}").glob("decoder_model_merged*.onnx"):  # every precision
            decoder.write_bytes(decoder.read_bytes()[:1000])
    daemon = make_daemon(broken, tmp_path)
    first = daemon.handle({"cmd": "describe", "image": str(screen)})
    daemon.speaker.wait_idle(60)  # heard in full before the next request silences it
    assert " ".join(daemon.speaker.spoken).count("installed models are broken") == 1
    second = daemon.handle({"cmd": "describe", "image": str(screen)})
    daemon.speaker.wait_idle(60)
    daemon.speaker.close()
    said = first["result"]["text"]
    note = ("9 installed models are broken: " + ", ".join(f"tiny-{n}" for n in range(1, 10)) +
            ". They are not usable; describe-screen models list says why and how to fix it.")
    assert said.endswith(note), said
    assert "Submit" in said[:-len(note)]  # the text reader's description came first
    assert "broken" not in second["result"]["text"] and "Submit" in second["result"]["text"]


def test_damaged_bundle_falls_back_to_the_text_reader_and_says_so(models_dir, screen, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-smolvlm", broken / "tiny-smolvlm")
    for decoder in (broken / "tiny-smolvlm").glob("decoder_model_merged*.onnx"):  # every precision
        decoder.write_bytes(decoder.read_bytes()[:1000])
    assert_text_reader_took_over(broken, screen, tmp_path, "decoder_model_merged")


def assert_text_reader_took_over(models: Path, screen: Path, tmp_path: Path, named: str) -> None:
    """A describe with the one broken bundle in `models`: the text reader's description comes, then one
    sentence says the model is not usable, and `models list`'s reason names the file `named`."""
    from describe_screen import models as catalogue

    daemon = make_daemon(models, tmp_path)
    final = daemon.handle({"cmd": "describe", "image": str(screen)})
    daemon.speaker.wait_idle(60)
    daemon.speaker.close()
    spoken = " ".join(daemon.speaker.spoken)
    assert final["event"] == "done"
    assert "not usable; describe-screen models list says why" in spoken
    assert "Submit" in final["result"]["text"]
    reasons = catalogue.broken(models)
    assert len(reasons) == 1 and named in str(next(iter(reasons.values()))), reasons


def test_auto_picks_the_strongest_model_the_machine_runs_at_speed(tmp_path):
    """With every catalogued model installed, Qwen3.5 serves describe and ask: the 2B where it runs at
    speed (CUDA, or 8 cores and 8 GB), else the 0.8B; Florence-2 reads text. Without Qwen3.5, describe
    and read use Florence-2 and questions SmolVLM (issue 4's defaults)."""
    from describe_screen import models
    from describe_screen.vlm.manifest import write_manifest

    def install(folder, specs):
        for spec in specs:
            (folder / spec.name).mkdir(parents=True)
            (folder / spec.name / "tokenizer.json").write_text("{}")  # a bundle lists its files; the choice is tested
            write_manifest(folder / spec.name, spec.bundle_info(), ["tokenizer.json"])
        return folder

    def picks(folder, machine):
        return {task: models.default_for(task, folder, machine).name
                for task in (vlm.CAPTION_BRIEF, vlm.CAPTION_FULL, vlm.ASK, vlm.OCR)}

    small, big, gpu = models.Machine(2, 24, False), models.Machine(8, 16, False), models.Machine(2, 4, True)
    every = install(tmp_path / "every", models.available())
    qwen = {vlm.CAPTION_BRIEF: "qwen3.5-0.8b", vlm.CAPTION_FULL: "qwen3.5-0.8b", vlm.ASK: "qwen3.5-0.8b",
            vlm.OCR: "florence-2-base"}
    assert picks(every, small) == qwen
    assert picks(every, big) == picks(every, gpu) == {**qwen, **dict.fromkeys(qwen, "qwen3.5-2b"),
                                                      vlm.OCR: "florence-2-base"}
    chosen, passed_over = models.choice(vlm.ASK, every, small)
    assert chosen.name == "qwen3.5-0.8b" and [m.name for m in passed_over] == ["qwen3.5-2b"]
    assert "8 cores and 8 GB" in models.needs(passed_over[0].speed) and "2 cores" in small.says()
    # only the 2B installed on a small machine: it is still used, the slower answer beats none
    # and what a user without a vision model is told to install: what this machine runs at speed
    assert models.install_hint(vlm.ASK, machine=small).endswith("models install qwen3.5-0.8b.")
    assert models.install_hint(vlm.ASK, machine=gpu).endswith("models install qwen3.5-2b.")
    assert models.install_hint(vlm.OCR, machine=small).endswith("models install florence-2-base.")
    only = install(tmp_path / "two", [models.manifest("qwen3.5-2b")])
    assert models.default_for(vlm.ASK, only, small).name == "qwen3.5-2b"
    older = install(tmp_path / "older", [m for m in models.available() if m.family != "qwen3.5"])
    assert picks(older, small) == {vlm.CAPTION_BRIEF: "florence-2-base", vlm.CAPTION_FULL: "florence-2-base",
                                   vlm.ASK: "smolvlm-256m-instruct", vlm.OCR: "florence-2-base"}


# -- malformed bundles: every one is a plain sentence naming the file, and the text reader answers ------------

def _damage(bundle: Path, kind: str) -> str:
    """Damage `bundle` one way; returns the file name the user must hear."""
    import json

    from describe_screen.vlm.manifest import MANIFEST, write_manifest

    manifest = json.loads((bundle / MANIFEST).read_text())
    if kind == "list manifest":
        (bundle / MANIFEST).write_text(json.dumps([manifest]))
    elif kind == "non-numeric rank":
        (bundle / MANIFEST).write_text(json.dumps({**manifest, "rank": "first"}))
    elif kind == "missing size":
        del manifest["files"]["config.json"]["size"]
        (bundle / MANIFEST).write_text(json.dumps(manifest))
    elif kind == "unknown family":
        (bundle / MANIFEST).write_text(json.dumps({**manifest, "family": "llava9"}))
    else:  # "{} config": a config.json that is valid JSON, hashed into the manifest, and holds nothing
        (bundle / "config.json").write_text("{}")
        write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("files", "format")},
                       list(manifest["files"]))
        return "config.json"
    return "manifest.json"


MALFORMED = ["list manifest", "non-numeric rank", "missing size", "unknown family", "{} config"]


def settings(tmp: Path, models: Path) -> dict[str, str]:
    """The environment of a describe-screen process with its own socket, settings and models folder."""
    import os

    (tmp / "config.toml").write_text(f'[models]\ndir = "{models}"\nmax_new_tokens = 8\n[speech]\ncues = false\n')
    return dict(os.environ, DESCRIBE_SCREEN_SOCKET=str(tmp / "daemon.sock"),
                DESCRIBE_SCREEN_CONFIG=str(tmp / "config.toml"), DESCRIBE_SCREEN_DATA=str(tmp / "data"))


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "describe_screen", *args], env=env, capture_output=True, text=True,
                          timeout=300)


class DaemonProcess:
    """`describe-screen daemon --no-hotkeys --speech-file` with its own socket, settings and models folder."""

    def __init__(self, tmp: Path, models: Path) -> None:
        from describe_screen import ipc

        self.env = settings(tmp, models)
        self.log = (tmp / "daemon.log").open("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "describe_screen", "daemon", "--no-hotkeys",
                                      "--speech-file", str(tmp / "speech.wav")],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        self.client = ipc.Client(tmp / "daemon.sock", timeout=120)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self) -> None:
        import time

        deadline = time.time() + 180
        while "ready" not in self.output():
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"daemon did not start:\n{self.output()}")
            time.sleep(0.2)

    def close(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()


@pytest.mark.parametrize("damage", MALFORMED)
def test_malformed_bundle_daemon_starts_says_so_and_the_text_reader_describes(models_dir, screen, tmp_path, damage):
    import time

    broken = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-smolvlm", broken / "tiny-smolvlm")
    named = _damage(broken / "tiny-smolvlm", damage)
    daemon = DaemonProcess(tmp_path, broken)
    try:
        daemon.wait_ready()
        assert "Traceback" not in daemon.output()
        final = daemon.client.request({"cmd": "describe", "image": str(screen)})
        assert final["event"] == "done", final
        deadline = time.time() + 120
        while (status := daemon.client.request({"cmd": "status"})["result"])["speaking"] and time.time() < deadline:
            time.sleep(0.2)
        spoken = " ".join(status["spoken"])
        if named == "manifest.json":  # found by the scan: one short note after the answer
            assert spoken.index("with a button Submit") < spoken.index("The installed model tiny-smolvlm is not "
                                                                       "usable; describe-screen models list says why")
        else:  # found when loading: said with the answer, naming the file
            assert "vision model could not be loaded" in spoken and named in spoken and "text reader" in spoken
        assert "with a button Submit" in spoken  # the text reader's brief description
        assert "Something went wrong" not in spoken and "Traceback" not in daemon.output()
    finally:
        daemon.close()


def test_one_shot_describe_and_ask_fall_back_to_the_text_reader(models_dir, screen, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-smolvlm", broken / "tiny-smolvlm")
    _damage(broken / "tiny-smolvlm", "{} config")
    env = settings(tmp_path, broken)
    described = cli(env, "describe", "--image", str(screen), "--speech-file", str(tmp_path / "one.wav"))
    assert described.returncode == 0, described.stderr
    assert "config.json" in described.stdout and "text reader" in described.stdout  # hashed, fails to load
    assert "with a button Submit" in described.stdout
    asked = cli(env, "ask", "What does the button say?", "--image", str(screen), "--speech-file",
                str(tmp_path / "two.wav"))
    out = asked.stdout + asked.stderr
    assert "config.json" in asked.stdout and "Something went wrong" not in out and "Traceback" not in out


@pytest.mark.parametrize("damage", MALFORMED)
def test_models_list_and_verify_name_the_broken_file_in_a_sentence(models_dir, tmp_path, damage):
    broken = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-smolvlm", broken / "tiny-smolvlm")
    named = _damage(broken / "tiny-smolvlm", damage)
    env = settings(tmp_path, broken)
    listed = cli(env, "models", "list")
    assert listed.returncode == 0 and "Traceback" not in listed.stdout + listed.stderr
    if named == "manifest.json":  # a bundle whose manifest is unusable is listed as broken, in a sentence
        assert "Broken:\ntiny-smolvlm: The model file manifest.json" in listed.stdout, listed.stdout
        assert "describe-screen models remove tiny-smolvlm." in listed.stdout
    verified = cli(env, "models", "verify", "tiny-smolvlm")
    out = verified.stdout + verified.stderr
    assert verified.returncode == 1 and "Traceback" not in out and named in out and "tiny-smolvlm" in out, out
