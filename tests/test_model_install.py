"""`describe-screen models install`: the real huggingface_hub client downloads a tiny SmolVLM's published-
style files from a hub served on 127.0.0.1 (tests/fake_hub.py), checks them and publishes the bundle, which
then describes a picture; lost connections, tampered files, no network and full disks are all refused
in one sentence and never leave a bundle that loads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_hub import PUBLISHED_COMMITS, FakeHub, Faults, Repo, repo_from_bundle
from PIL import Image, ImageDraw, ImageFont
from tiny import tiny_smolvlm_bundle

from describe_screen import models

NAME = "smolvlm-256m-instruct"
SPEC = models.manifest(NAME)
REPO = SPEC.published["repo"]
DECODER = "onnx/decoder_model_merged_int8.onnx"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture
def published(tiny) -> dict[str, bytes]:
    """The tiny model as the hub publishes SmolVLM: configs at the top, onnx/<graph>[_int8].onnx."""
    source, bundle = tiny
    return repo_from_bundle(source, bundle, SPEC.published["graphs"])


def hub_repo(files: dict[str, bytes]) -> dict[str, Repo]:
    return {REPO: Repo(files)}  # the hub holds the real commit only: a wrong pin fails here


def env_for(tmp_path: Path, endpoint: str, data: Path | None = None) -> dict[str, str]:
    (tmp_path / "config.toml").write_text("[models]\nmax_new_tokens = 8\n[speech]\ncues = false\n")
    return dict(os.environ, HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"),
                DESCRIBE_SCREEN_CONFIG=str(tmp_path / "config.toml"),
                DESCRIBE_SCREEN_DATA=str(data or tmp_path / "data"))


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "describe_screen", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def one_sentence_error(result: subprocess.CompletedProcess) -> str:
    """The failure as the user reads it: exit code 1, no traceback, one 'describe-screen: ...' line."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("describe-screen: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def form_image(path: Path) -> Path:
    picture = Image.new("RGB", (640, 360), "white")
    ImageDraw.Draw(picture).text((40, 40), "Sign up for the newsletter", fill="black",
                                 font=ImageFont.truetype(FONT, 28))
    picture.save(path)
    return path


def left_behind(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


def test_install_then_describe_speaks_the_installed_models_words(published, tiny, tmp_path):
    with FakeHub(hub_repo(published)) as hub:
        env = env_for(tmp_path, hub.url)
        result = cli("models", "install", NAME, env=env)
    assert result.returncode == 0, result.stderr
    total_mb = max(1, round(sum(len(v) for k, v in published.items()
                                if k.endswith("_int8.onnx") or not k.endswith(".onnx")) / 1e6))
    assert f"Downloading {NAME}, int8, {total_mb} megabytes." in result.stdout
    assert f"{NAME} is installed." in result.stdout
    bundle = tmp_path / "data" / "models" / NAME
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["precisions"] == ["int8"]
    assert manifest["source"] == {"repo": REPO, "revision": PUBLISHED_COMMITS[REPO], "published": True}
    # flat, onnx-community names, each file byte-identical to the published one
    graphs = {f"{g}_int8.onnx" for g in SPEC.published["graphs"]}
    assert graphs <= set(manifest["files"])
    assert not any(name.endswith(".onnx") and name not in graphs for name in manifest["files"])
    for name, entry in manifest["files"].items():
        served = published[f"onnx/{name}" if name.endswith(".onnx") else name]
        assert entry == {"size": len(served), "sha256": hashlib.sha256(served).hexdigest()}
    assert left_behind(bundle.parent) == [NAME]  # no download or staging folder stays
    # only the int8 graphs and support files crossed the wire
    fetched = {path.split("/resolve/", 1)[1].split("/", 1)[1] for method, path, _ in hub.log if method == "GET"
               and "/resolve/" in path}
    assert not any(p.endswith(".onnx") and not p.endswith("_int8.onnx") for p in fetched)
    # the install made the fused decoder the first describe will run, so no hotkey waits for it
    [fused] = (bundle / ".derived").glob("*.onnx")
    assert fused.name.startswith("decoder_model_merged_int8.decoder_fused.")
    assert "It is ready." in result.stdout

    image = form_image(tmp_path / "form.png")
    speech = tmp_path / "out.wav"
    described = cli("describe", "--image", str(image), "--json", "--speech-file", str(speech), env=env)
    assert described.returncode == 0, described.stderr
    text = json.loads(described.stdout)["result"]["text"]
    # the same words the tiny model says from the files it was exported to, before any download
    reference = tmp_path / "reference"
    (reference / "models").mkdir(parents=True)
    (reference / "models" / NAME).symlink_to(tiny[1])
    expected = cli("describe", "--image", str(image), "--json", "--speech-file", str(tmp_path / "ref.wav"),
                   env=env_for(tmp_path, hub.url, data=reference))
    assert expected.returncode == 0, expected.stderr
    assert text == json.loads(expected.stdout)["result"]["text"]
    assert text.startswith("Sign up for the newsletter.") and len(text) > len("Sign up for the newsletter.") + 1
    with wave.open(str(speech)) as wav:
        assert wav.getnframes() / wav.getframerate() > 1.5  # the description was spoken


def test_connection_cut_mid_file_is_resumed_with_a_range_request(published, tmp_path):
    """A 24 MB external-weights file (the way large graphs are published) breaks off halfway; the client
    keeps what it wrote (10 MB blocks) and asks for the rest with a Range request."""
    weights = f"{DECODER}_data"
    files = {**published, weights: os.urandom(24 * 1024 * 1024)}
    with FakeHub(hub_repo(files), Faults(cut_once={weights})) as hub:
        result = cli("models", "install", NAME, env=env_for(tmp_path, hub.url))
    assert result.returncode == 0, result.stderr
    ranges = [rng for method, path, rng in hub.log if method == "GET" and path.endswith(weights)]
    assert ranges == ["", f"bytes={10 * 1024 * 1024}-"]  # the first transfer broke off; the second went on
    bundle = tmp_path / "data" / "models" / NAME
    assert (bundle / "decoder_model_merged_int8.onnx_data").read_bytes() == files[weights]
    listed = json.loads((bundle / "manifest.json").read_text())["files"]["decoder_model_merged_int8.onnx_data"]
    assert listed["sha256"] == hashlib.sha256(files[weights]).hexdigest()


def test_ctrl_c_mid_download_leaves_no_model_and_the_next_run_goes_on(published, tmp_path):
    env = env_for(tmp_path, "")
    faults = Faults(stalled={DECODER})
    with FakeHub(hub_repo(published), faults) as hub:
        env["HF_ENDPOINT"] = hub.url
        running = subprocess.Popen([sys.executable, "-m", "describe_screen", "models", "install", NAME], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any(m == "GET" and p.endswith(DECODER) for m, p, _ in hub.log) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # half the decoder is on its way
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=120)
        faults.release.set()
        line = one_sentence_error(subprocess.CompletedProcess(running.args, running.returncode, "", err))
        assert f"The install of {NAME} was stopped, so it is not installed." in line
        models_dir = tmp_path / "data" / "models"
        assert NAME not in left_behind(models_dir) and not list(models_dir.rglob("manifest.json"))
        listed = cli("models", "list", env=env).stdout
        assert "not installed" in next(x for x in listed.splitlines() if x.startswith(f"{NAME}:"))
        first = len(hub.log)
        again = cli("models", "install", NAME, env=env)
    assert again.returncode == 0, again.stderr
    refetched = {p.rsplit("/", 1)[-1] for m, p, _ in hub.log[first:] if m == "GET" and "/resolve/" in p}
    # the graphs finished before the stop were kept and not downloaded again
    assert "vision_encoder_int8.onnx" not in refetched and "embed_tokens_int8.onnx" not in refetched
    assert "decoder_model_merged_int8.onnx" in refetched
    installed = tmp_path / "data" / "models" / NAME / "decoder_model_merged_int8.onnx"
    assert installed.read_bytes() == published[DECODER]


def test_file_with_wrong_checksum_is_refused_and_nothing_is_published(published, tmp_path):
    with FakeHub(hub_repo(published), Faults(tampered={"onnx/embed_tokens_int8.onnx"})) as hub:
        env = env_for(tmp_path, hub.url)
        result = cli("models", "install", NAME, env=env)
    line = one_sentence_error(result)
    assert "onnx/embed_tokens_int8.onnx" in line and "does not match the checksum" in line
    models_dir = tmp_path / "data" / "models"
    assert NAME not in left_behind(models_dir)
    assert not list(models_dir.rglob("manifest.json"))
    listing = cli("models", "list", env=env)
    line = next(line for line in listing.stdout.splitlines() if line.startswith(f"{NAME}:"))
    assert "not installed" in line


def test_a_pin_the_hub_does_not_hold_is_refused_as_the_real_hub_refuses_it(published, tmp_path, monkeypatch):
    """The commit this manifest named before it was checked against public references: the hub answers 404
    RevisionNotFound, and the install says so in one sentence instead of installing whatever it serves."""
    import dataclasses

    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import RevisionNotFoundError

    from describe_screen.download import install
    from describe_screen.errors import UserError

    old_pin = "acc054744d60adea9d88214dab6e2219e6e512a7"
    stale = dataclasses.replace(SPEC, published=SPEC.published | {"revision": old_pin})
    with FakeHub(hub_repo(published)) as hub:
        with pytest.raises(RevisionNotFoundError):
            HfApi(endpoint=hub.url).model_info(REPO, revision=stale.published["revision"])
        assert HfApi(endpoint=hub.url).model_info(REPO, revision=SPEC.published["revision"]).sha == \
            PUBLISHED_COMMITS[REPO]
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        with pytest.raises(UserError) as refused:
            install(stale, tmp_path / "models", "int8", tell=lambda *a, **k: None)
    assert refused.value.problem == f"The model server has no {REPO} at the version this describe-screen expects."
    assert not any(path.endswith(".onnx") for method, path, _ in hub.log if method == "GET")
    assert not (tmp_path / "models" / NAME).exists()


def test_no_network_is_one_plain_sentence(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nobody listens on: the hub is unreachable
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = cli("models", "install", NAME, env=env_for(tmp_path, closed), timeout=120)
    line = one_sentence_error(result)
    assert line.startswith(f"describe-screen: The model server could not be reached, so {NAME} was not installed.")
    assert "Check the internet connection" in line
    assert left_behind(tmp_path / "data" / "models") == []


@pytest.fixture
def small_disk(tmp_path) -> Iterator[callable]:
    """Mount tmpfs folders of a chosen size (the test runs as root in CI; elsewhere it cannot mount)."""
    mounted: list[Path] = []

    def mount(megabytes: int) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"A small tmpfs could not be mounted ({done.stderr.strip()}); this test needs root.")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_too_little_free_space_is_refused_before_downloading(published, small_disk, tmp_path):
    disk = small_disk(8)
    with FakeHub(hub_repo(published)) as hub:
        result = cli("models", "install", NAME, env=env_for(tmp_path, hub.url, data=disk))
    line = one_sentence_error(result)
    assert f"There is not enough free disk space to install {NAME}" in line
    assert not any(method == "GET" and "/resolve/" in path for method, path, _ in hub.log)
    assert left_behind(disk / "models") == []


def test_disk_filling_up_mid_download_leaves_nothing(published, small_disk, tmp_path):
    """The listing says the decoder is small, so the space check passes, but 80 MB arrive on a 72 MB disk."""
    disk = small_disk(72)
    files = dict(published)
    files[DECODER] = published[DECODER] + bytes(80 * 1024 * 1024)
    faults = Faults(listed_smaller={DECODER: len(published[DECODER])})
    with FakeHub(hub_repo(files), faults) as hub:
        result = cli("models", "install", NAME, env=env_for(tmp_path, hub.url, data=disk))
    line = one_sentence_error(result)
    assert f"The disk filled up while {NAME} was downloading, so it was not installed." in line
    assert left_behind(disk / "models") == []


def test_install_through_a_running_daemon_is_heard_and_used_at_once(published, tmp_path):
    """With the daemon running, the install's first and last sentences are spoken by it, and its very
    next description comes from the new model instead of the text reader."""
    image = form_image(tmp_path / "form.png")
    with FakeHub(hub_repo(published)) as hub:
        env = env_for(tmp_path, hub.url)
        daemon = subprocess.Popen([sys.executable, "-m", "describe_screen", "daemon", "--no-hotkeys",
                                   "--speech-file", str(tmp_path / "daemon.wav")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until_ready(daemon)
            before = json.loads(cli("describe", "--image", str(image), "--json", env=env).stdout)["result"]["text"]
            installed = cli("models", "install", NAME, env=env)
            assert installed.returncode == 0, installed.stderr
            spoken = spoken_when_quiet(env)
            after = json.loads(cli("describe", "--image", str(image), "--json", env=env).stdout)["result"]["text"]
        finally:
            daemon.terminate()
            daemon.wait(60)
    total_mb = max(1, round(sum(len(v) for k, v in published.items()
                                if k.endswith("_int8.onnx") or not k.endswith(".onnx")) / 1e6))
    assert f"Downloading {NAME}, int8, {total_mb} megabytes." in spoken
    assert f"{NAME} is installed." in spoken
    assert before.startswith("form.png. A screen, with 1 line of text.")  # the text reader, before
    assert after.startswith("Sign up for the newsletter.") and after != before  # the new model's caption, after


def wait_until_ready(daemon: subprocess.Popen, timeout: float = 240) -> None:
    """Read the daemon's output on a thread until it says it is ready (it loads the text reader first)."""
    import threading

    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in daemon.stdout:
            lines.append(line)
            if "describe-screen is ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(timeout), "".join(lines)


def spoken_when_quiet(env: dict[str, str], timeout: float = 120) -> list[str]:
    """What the daemon has said, once it has finished saying it (a new request would cut queued speech)."""
    deadline = time.monotonic() + timeout
    while True:
        status = json.loads(cli("status", "--json", env=env).stdout)["result"]
        if not status["speaking"] or time.monotonic() > deadline:
            return status["spoken"]
        time.sleep(0.5)


def test_florence_installs_its_four_graphs_from_onnx_community_and_says_the_same_tokens(tmp_path):
    """Florence-2 comes from onnx-community (a different repo than its checkpoint) with an encoder graph
    as well; the installed int8 bundle decodes exactly the tokens of the files it was served from."""
    from tiny_florence import build_tiny_florence

    from describe_screen.export import export_model
    from describe_screen.vlm import RuntimeOptions, load_model

    spec = models.manifest("florence-2-base")
    assert spec.published["repo"] == "onnx-community/Florence-2-base"
    source = build_tiny_florence(tmp_path / "florence-source")
    reference = export_model("florence-2-base", tmp_path / "reference" / "florence-2-base", "auto", source=source)
    files = repo_from_bundle(source, reference, spec.published["graphs"])
    with FakeHub({spec.published["repo"]: Repo(files)}) as hub:
        result = cli("models", "install", "florence-2-base", env=env_for(tmp_path, hub.url))
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "data" / "models" / "florence-2-base"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {f"{g}_int8.onnx" for g in ("vision_encoder", "embed_tokens", "encoder_model", "decoder_model_merged")} \
        <= set(manifest["files"])
    image = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(image).text((20, 20), "Invoice 42 is paid", fill="black", font=ImageFont.truetype(FONT, 24))
    ours = load_model(bundle, RuntimeOptions(provider="cpu"))
    theirs = load_model(reference, RuntimeOptions(provider="cpu", precision="int8"))
    said = list(ours.generate_ids(image, "<CAPTION>", max_new_tokens=8))
    assert said and said == list(theirs.generate_ids(image, "<CAPTION>", max_new_tokens=8))


def test_every_fix_a_broken_bundle_message_suggests_works_as_written(published, tiny, tmp_path):
    """Four ways a bundle breaks: each is listed under Broken with its reason, and the command its message
    suggests is run exactly as written; afterwards nothing is broken and the replaced model is whole."""
    _, bundle = tiny
    models_dir = tmp_path / "data" / "models"
    with FakeHub(hub_repo(published)) as hub:
        env = env_for(tmp_path, hub.url)
        assert cli("models", "install", NAME, env=env).returncode == 0
        (models_dir / NAME / "embed_tokens_int8.onnx").unlink()  # a graph gone
        shutil.copytree(bundle, models_dir / "tiny-smolvlm")  # not in the catalogue: a file cut short
        graph = models_dir / "tiny-smolvlm" / "decoder_model_merged.onnx"
        graph.write_bytes(graph.read_bytes()[:1000])
        shutil.copytree(bundle, models_dir / "half-written")
        (models_dir / "half-written" / "manifest.json").write_text("{not json")
        shutil.copytree(bundle, models_dir / "future-model")
        manifest = json.loads((models_dir / "future-model" / "manifest.json").read_text())
        (models_dir / "future-model" / "manifest.json").write_text(json.dumps(manifest | {"family": "qwen9"}))

        listing = cli("models", "list", env=env)
        assert listing.returncode == 0, listing.stderr
        assert f"{NAME}: smolvlm," in listing.stdout and "installed but broken (see below)" in listing.stdout
        broken = listing.stdout.split("Broken:\n", 1)[1].splitlines()
        assert [line.split(":", 1)[0] for line in broken] == ["future-model", "half-written", NAME, "tiny-smolvlm"]
        reasons = dict(line.split(": ", 1) for line in broken)
        assert "embed_tokens_int8.onnx is missing" in reasons[NAME]
        assert "decoder_model_merged.onnx" in reasons["tiny-smolvlm"] and "bytes instead of" in reasons["tiny-smolvlm"]
        assert "names the family 'qwen9'" in reasons["future-model"]
        for name, said in reasons.items():
            assert "NAME" not in said and said.count("describe-screen models ") == 1, said
            command = said.split("describe-screen models ", 1)[1].rstrip(".").split()
            assert command[-1] == name, said  # the real name, as `models` takes it
            assert command[0] == ("install" if name == NAME else "remove"), said
            fixed = cli("models", *command, env=env)
            assert fixed.returncode == 0, f"{said}\n{fixed.stdout}{fixed.stderr}"

        after = cli("models", "list", env=env)
    assert "Broken" not in after.stdout, after.stdout
    assert left_behind(models_dir) == [NAME]
    assert cli("models", "verify", NAME, env=env).returncode == 0


def test_a_broken_export_only_model_is_replaced_by_the_export_its_message_suggests(tmp_path):
    """florence-2-large has no pinned published files, so its fix is an export of the pinned checkpoint:
    run as written, it downloads that commit (from the test hub, which holds nothing else) and exports."""
    from tiny_florence import build_tiny_florence

    source = build_tiny_florence(tmp_path / "florence-source")
    files = {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    spec = models.manifest("florence-2-large")
    models_dir = tmp_path / "data" / "models"
    (models_dir / "florence-2-large").mkdir(parents=True)
    (models_dir / "florence-2-large" / "manifest.json").write_text("{not json")
    with FakeHub({spec.repo: Repo(files)}) as hub:
        env = env_for(tmp_path, hub.url)
        listing = cli("models", "list", env=env)
        said = listing.stdout.split("Broken:\n", 1)[1].strip()
        assert said.startswith("florence-2-large: The model file manifest.json") and said.endswith(
            "Replace it with: describe-screen models export florence-2-large."), said
        fixed = cli("models", *said.rsplit("describe-screen models ", 1)[1].rstrip(".").split(), env=env)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert any(f"/{spec.revision}/" in path for _, path, _ in hub.log)  # the pinned checkpoint
        after = cli("models", "list", env=env)
    assert "Broken" not in after.stdout
    assert "florence-2-large: florence2, does caption brief, caption full, ocr; MIT licence; installed (" \
        in after.stdout
