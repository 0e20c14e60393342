"""Model manifests (models/*.toml) and installed bundles: list, find, verify, remove, defaults."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from tiny import tiny_smolvlm_bundle

from describe_screen import models
from describe_screen.errors import UserError
from describe_screen.vlm import ASK, CAPTION_BRIEF, OCR


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture
def models_dir(tiny, tmp_path) -> Path:
    shutil.copytree(tiny[1], tmp_path / "models" / "tiny-smolvlm")
    return tmp_path / "models"


def test_smolvlm_manifests_pin_real_revisions():
    found = {m.name: m for m in models.available()}
    for name, repo in (("smolvlm-256m-instruct", "HuggingFaceTB/SmolVLM-256M-Instruct"),
                       ("smolvlm-500m-instruct", "HuggingFaceTB/SmolVLM-500M-Instruct")):
        manifest = found[name]
        assert manifest.repo == repo and manifest.family == "smolvlm" and manifest.licence == "Apache-2.0"
        assert re.fullmatch(r"[0-9a-f]{40}", manifest.revision)
        assert set(manifest.tasks) == {"caption_brief", "caption_full", "ask"}
        assert "{question}" in manifest.prompts["ask"] and "{text}" in manifest.prompts["grounding"]
        assert manifest.bundle_info()["source"] == {"repo": repo, "revision": manifest.revision}
    assert models.available().index(found["smolvlm-256m-instruct"]) < \
        models.available().index(found["smolvlm-500m-instruct"])


COMMIT = re.compile(r"[0-9a-f]{40}")


def pins(manifest: models.ModelManifest) -> dict[str, str]:
    """Every revision a manifest names: its checkpoint's and its published files'."""
    found = {manifest.repo: manifest.revision} if manifest.revision else {}
    if manifest.published:
        found[manifest.published["repo"]] = manifest.published["revision"]
    return found


def test_every_manifest_pins_a_commit_never_a_branch():
    """A branch such as main moves: the files installed tomorrow would not be the files checked today."""
    for manifest in models.available():
        for repo, revision in pins(manifest).items():
            assert COMMIT.fullmatch(revision), f"{manifest.name} pins {repo} at {revision!r}, not a commit"


def test_a_checkpoint_with_no_pinned_commit_is_never_downloaded():
    """Qwen3.5's checkpoint commit is in no public reference: it installs from its pinned published files,
    and export takes only a local checkpoint, saying how."""
    from describe_screen.export.common import resolve_source

    for name in ("qwen3.5-0.8b", "qwen3.5-2b"):
        manifest = models.manifest(name)
        assert manifest.revision == "" and COMMIT.fullmatch(manifest.published["revision"])
        with pytest.raises(UserError) as refused:
            resolve_source(manifest, None)
        assert "does not download" in refused.value.problem
        assert f"models install {name}" in refused.value.fix and "--source FOLDER" in refused.value.fix
    unpinned = [m.name for m in models.available() if not m.revision and not m.published]
    assert unpinned == [], "a model with neither a pinned checkpoint nor published files cannot be had"


def test_a_manifest_naming_a_branch_is_refused_by_the_pin_check(tmp_path):
    text = (models.MANIFEST_DIR / "florence-2-base.toml").read_text()
    (tmp_path / "moving.toml").write_text(text.replace('revision = "d59e079711c57174f29265539fb4cc9f0f335916"',
                                                       'revision = "main"'))
    [moving] = models.available(tmp_path)
    assert not all(COMMIT.fullmatch(revision) for revision in pins(moving).values())


def test_pins_are_the_commits_public_references_record():
    from fake_hub import PUBLISHED_COMMITS

    for manifest in models.available():
        for repo, revision in pins(manifest).items():
            assert PUBLISHED_COMMITS.get(repo) == revision, f"{manifest.name}: {repo} at {revision}"


def test_unknown_model_lists_known_ones():
    with pytest.raises(UserError) as error:
        models.manifest("smolvlm-9000b")
    assert "smolvlm-9000b" in error.value.problem and "smolvlm-256m-instruct" in error.value.fix


def test_installed_find_verify_remove(models_dir):
    (models_dir / "half-copied").mkdir()  # no manifest: not a bundle, not listed
    (models_dir / "broken").mkdir()
    (models_dir / "broken" / "manifest.json").write_text("{not json")
    listed = models.installed(models_dir)
    assert [m.name for m in listed] == ["tiny-smolvlm"]
    model = models.find("tiny-smolvlm", models_dir)
    assert model.family == "smolvlm" and model.precisions == ("fp32", "int8")
    assert model.size_bytes == sum(p.stat().st_size for p in model.path.iterdir()
                                   if p.is_file() and p.name not in ("manifest.json", ".verified.json"))
    assert models.verify("tiny-smolvlm", models_dir) == model
    assert models.default_for(ASK, models_dir) == model and models.default_for(CAPTION_BRIEF, models_dir) == model
    assert models.default_for(OCR, models_dir) is None
    (model.path / "tokenizer.json").write_text("{}")
    with pytest.raises(UserError, match=r"tokenizer\.json"):
        models.verify("tiny-smolvlm", models_dir)
    assert models.remove("tiny-smolvlm", models_dir) == model.path and not model.path.exists()
    with pytest.raises(UserError) as error:
        models.find("tiny-smolvlm", models_dir)
    assert "not installed" in error.value.problem and "describe-screen models list" in error.value.fix


def test_export_writes_manifest_with_hashes_and_prompts(tiny):
    _, bundle = tiny
    from describe_screen.vlm import read_manifest
    from describe_screen.vlm.manifest import sha256_of

    manifest = read_manifest(bundle)
    assert manifest["family"] == "smolvlm" and manifest["precisions"] == ["fp32", "int8"]
    assert manifest["prompts"] == models.manifest("smolvlm-256m-instruct").prompts
    expected = {"vision_encoder.onnx", "vision_encoder_int8.onnx", "embed_tokens.onnx", "embed_tokens_int8.onnx",
                "decoder_model_merged.onnx", "decoder_model_merged_int8.onnx", "tokenizer.json",
                "config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json"}
    assert expected <= set(manifest["files"])
    for name in expected:
        assert manifest["files"][name]["sha256"] == sha256_of(bundle / name)
    assert not bundle.with_name(bundle.name + ".partial").exists()


def test_exported_graphs_use_onnx_community_names(tiny):
    import onnxruntime as ort

    _, bundle = tiny

    def names(file: str) -> tuple[list[str], list[str]]:
        session = ort.InferenceSession(str(bundle / file), providers=["CPUExecutionProvider"])
        return [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]

    assert names("vision_encoder.onnx") == (["pixel_values", "pixel_attention_mask"], ["image_features"])
    assert names("embed_tokens.onnx") == names("embed_tokens_int8.onnx") == (["input_ids"], ["inputs_embeds"])
    inputs, outputs = names("decoder_model_merged.onnx")
    assert inputs == ["inputs_embeds", "attention_mask", "position_ids", "past_key_values.0.key",
                      "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"]
    assert outputs == ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]


def test_import_onnx_community_layout(tiny, tmp_path):
    from PIL import Image

    from describe_screen.vlm import CAPTION_BRIEF, Request, RuntimeOptions, load_model
    from describe_screen.vlm.decoding import Limits

    _, bundle = tiny
    folder = tmp_path / "download"
    (folder / "onnx").mkdir(parents=True)
    for path in bundle.iterdir():
        if path.is_dir():  # .derived: made on this machine, never part of a download
            continue
        if path.suffix == ".onnx":
            shutil.copy(path, folder / "onnx" / path.name)
        elif path.name not in ("manifest.json", ".verified.json"):
            shutil.copy(path, folder / path.name)
    (folder / "onnx" / "decoder_model_merged_q4.onnx").write_bytes(b"other quantisation")
    imported = models.import_bundle(folder, "smolvlm-256m-instruct", tmp_path / "models")
    assert imported.precisions == ("fp32", "int8") and imported.tasks == {"caption_brief", "caption_full", "ask"}
    assert not (imported.path / "decoder_model_merged_q4.onnx").exists()
    image, request = Image.new("RGB", (90, 60), "green"), Request(task=CAPTION_BRIEF)

    def answer(path: Path) -> list[int]:
        model = load_model(path, RuntimeOptions(provider="cpu"))
        return list(model.token_ids(image, request, lambda: False, Limits(8, repeat_span=0)))

    assert answer(imported.path) == answer(bundle)
    with pytest.raises(UserError, match="no full-precision ONNX files"):
        models.import_bundle(tmp_path, "smolvlm-256m-instruct", tmp_path / "elsewhere")
