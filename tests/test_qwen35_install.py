"""Qwen3.5 for a user: `models install qwen3.5-0.8b` from a hub serving the published -OPT layout (graphs
with their .onnx_data weights), then the daemon describes and answers with it, and says so and falls back
to the text reader when a graph is damaged or missing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import test_daemon_vlm
from fake_hub import FakeHub, Repo
from PIL import Image

from describe_screen import models, vlm
from describe_screen.config import Config
from describe_screen.download import RemoteFile, wanted_files

screen = test_daemon_vlm.screen  # the fixture: the same form, read by the same text reader
make_daemon = test_daemon_vlm.make_daemon
NAME = "qwen3.5-0.8b"
SPEC = models.manifest(NAME)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, bytes]:
    """The tiny Qwen3.5 as onnx-community publishes the -OPT repo: settings at the top, onnx/<graph>[_q4].onnx
    each with its .onnx_data."""
    from tiny_qwen import tiny_qwen_repo

    _, repo = tiny_qwen_repo(tmp_path_factory.getbasetemp(), ("fp32", "q4"))
    return {str(p.relative_to(repo)): p.read_bytes() for p in repo.rglob("*") if p.is_file() and p.name[0] != "."}


@pytest.fixture(scope="module")
def installed(published, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, list]:
    """(models folder, the install's output, the hub's request log) after `models install` with auto."""
    home = tmp_path_factory.mktemp("install")
    with FakeHub({SPEC.published["repo"]: Repo(published, revisions={SPEC.published["revision"]})}) as hub:
        result = subprocess.run([sys.executable, "-m", "describe_screen", "models", "install", NAME],
                                capture_output=True, text=True, timeout=600, env=environment(home, hub.url))
    return home / "data" / "models", result, hub.log


def environment(home: Path, endpoint: str = "") -> dict[str, str]:
    import os

    (home / "config.toml").write_text("[models]\nmax_new_tokens = 8\n[speech]\ncues = false\n")
    return dict(os.environ, HF_ENDPOINT=endpoint, HF_HOME=str(home / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                DESCRIBE_SCREEN_SOCKET=str(home / "none.sock"), DESCRIBE_SCREEN_CONFIG=str(home / "config.toml"),
                DESCRIBE_SCREEN_DATA=str(home / "data"))


def test_install_fetches_the_q4_graphs_with_their_weights_on_a_cpu(published, installed):
    models_dir, result, log = installed
    assert result.returncode == 0, result.stderr
    assert f"Downloading {NAME}, q4," in result.stdout and f"{NAME} is installed." in result.stdout
    bundle = models_dir / NAME
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["precisions"] == ["q4"] and manifest["family"] == "qwen3.5"
    graphs = {f"{graph}_q4.onnx" for graph in SPEC.published["graphs"]}
    assert {name for name in manifest["files"] if ".onnx" in name} == graphs | {f"{g}_data" for g in graphs}
    for name, entry in manifest["files"].items():  # flat, byte-identical to what the hub lists
        served = published[f"onnx/{name}" if ".onnx" in name else name]
        assert entry == {"size": len(served), "sha256": hashlib.sha256(served).hexdigest()}
    fetched = {path.rsplit("/", 1)[-1] for method, path, _ in log if method == "GET" and "/resolve/" in path}
    assert not any(".onnx" in name and "_q4." not in name for name in fetched)  # no fp32 graph crossed the wire
    assert "It is ready." in result.stdout  # the install opened it as the daemon will, and ran it once
    # and made the copies the CPU runs, whose 4-bit products are int8 (onnx.int8_products)
    made = sorted(p.name.split(".")[1] for p in (bundle / ".derived").glob("*.onnx"))
    assert made == ["int8_decoder", "int8_products"]


def test_sharded_weights_are_downloaded_with_their_graph():
    listing = {path: RemoteFile(path, 1, "", "") for path in
               ["onnx/decoder_model_merged_q4.onnx", "onnx/decoder_model_merged_q4.onnx_data",
                "onnx/decoder_model_merged_q4.onnx_data_1", "onnx/decoder_model_merged.onnx_data",
                "onnx/vision_encoder_q4.onnx", "onnx/vision_encoder_q4.onnx_data", "onnx/embed_tokens_q4.onnx",
                "config.json", "chat_template.jinja"]}
    chosen = [f.path for f in wanted_files(SPEC, "q4", listing)]
    assert chosen == ["onnx/vision_encoder_q4.onnx", "onnx/vision_encoder_q4.onnx_data", "onnx/embed_tokens_q4.onnx",
                      "onnx/decoder_model_merged_q4.onnx", "onnx/decoder_model_merged_q4.onnx_data",
                      "onnx/decoder_model_merged_q4.onnx_data_1", "config.json", "chat_template.jinja"]


def test_list_and_doctor_say_family_precision_graphs_and_why(installed, tmp_path):
    from describe_screen.commands.doctor import check_models

    models_dir, _, _ = installed
    env = environment(tmp_path)
    env["DESCRIBE_SCREEN_DATA"] = str(models_dir.parent)
    listed = subprocess.run([sys.executable, "-m", "describe_screen", "models", "list"], capture_output=True,
                            text=True, timeout=120, env=env).stdout
    line = next(x for x in listed.splitlines() if x.startswith(f"{NAME}:"))
    assert "qwen3.5" in line and "installed (q4" in line and "decoder_model_merged_q4.onnx" in line
    config = Config()
    config.models.dir = str(models_dir)
    said = check_models(config).says
    assert (f"describe uses {NAME} (the qwen3.5 family, q4 weights: decoder_model_merged_q4.onnx, "
            "embed_tokens_q4.onnx, vision_encoder_q4.onnx)") in said


def test_installed_model_describes_and_answers_through_the_daemon(installed, screen, tmp_path):
    models_dir, _, _ = installed
    daemon = make_daemon(models_dir, tmp_path)
    model = daemon.describer.model(vlm.CAPTION_BRIEF)
    assert model is not None and model.name == NAME and daemon.describer.model(vlm.ASK) is model
    final = daemon.handle({"cmd": "describe", "image": str(screen)})
    daemon.speaker.wait_idle(60)
    assert final["event"] == "done", final
    text = final["result"]["text"]
    image = Image.open(screen).convert("RGB")
    caption = "".join(model.stream(image, vlm.Request(task=vlm.CAPTION_BRIEF), lambda: False)).strip()
    assert caption and text.startswith("Sign up for the newsletter.") and text.endswith(caption)
    assert " ".join(daemon.speaker.spoken).split() == text.split()  # every word was said

    asked = daemon.handle({"cmd": "ask", "image": str(screen), "question": "Is there a Submit button?"})
    daemon.speaker.wait_idle(60)
    answer = asked["result"]["text"]
    grounding = " ".join(line.text for line in daemon.scene.lines)[:vlm.GROUNDING_CHARS]
    expected = "".join(model.stream(image, vlm.Request(task=vlm.ASK, question="Is there a Submit button?",
                                                       grounding=grounding), lambda: False)).strip()
    assert answer == expected and answer
    daemon.speaker.close()


@pytest.mark.parametrize("damage", ["truncated decoder weights", "missing vision encoder"])
def test_a_damaged_graph_falls_back_to_the_text_reader_and_says_so(installed, screen, tmp_path, damage):
    models_dir, _, _ = installed
    broken = tmp_path / "models"
    shutil.copytree(models_dir / NAME, broken / NAME, ignore=shutil.ignore_patterns(".derived", ".verified.json"))
    if damage == "truncated decoder weights":
        named = "decoder_model_merged_q4.onnx_data"
        weights = broken / NAME / named
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        named = "vision_encoder_q4.onnx"
        (broken / NAME / named).unlink()
    test_daemon_vlm.assert_text_reader_took_over(broken, screen, tmp_path, named)


def test_auto_weights_are_q4_on_the_cpu_and_fp16_where_cuda_runs(monkeypatch):
    from describe_screen import download
    from describe_screen.vlm import bundle, onnx

    preferred = SPEC.published["auto"]
    assert download.choose_precision("auto", "cpu", preferred=preferred) == "q4"
    monkeypatch.setattr(onnx, "usable_device", lambda provider="auto": "cuda")
    assert download.choose_precision("auto", preferred=preferred) == "fp16"
    assert download.choose_precision("auto", configured="q4f16", preferred=preferred) == "q4f16"  # the settings win
    # a bundle holding several weight sets runs the family's choice, not the int8 other families prefer
    assert bundle.choose_precision("auto", ["int8", "q4"], "cpu", preferred["cpu"]) == "q4"
    assert bundle.choose_precision("auto", ["fp16", "q4"], "cuda", preferred["cuda"]) == "fp16"
    assert bundle.choose_precision("auto", ["int8", "q4"], "cpu") == "int8"
