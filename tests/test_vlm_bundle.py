"""Damaged bundles and providers: every failure is a UserError naming the file or input and the fix."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import tiny_smolvlm_bundle

from describe_screen.errors import UserError
from describe_screen.vlm import CAPTION_BRIEF, Request, RuntimeOptions, load_model
from describe_screen.vlm.manifest import MANIFEST, STAMP, check_bundle, write_manifest
from describe_screen.vlm.onnx import BoundRunner, create_session

FIX = "Remove it with: describe-screen models remove tiny-smolvlm."  # not a catalogued model: no install


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture
def bundle(tiny, tmp_path) -> Path:
    """A private copy each test may damage."""
    return Path(shutil.copytree(tiny[1], tmp_path / "tiny-smolvlm"))


def describe(bundle: Path, **options) -> str:
    model = load_model(bundle, RuntimeOptions(provider="cpu", max_new_tokens=3, **options))
    return "".join(model.stream(Image.new("RGB", (50, 40), "blue"), Request(task=CAPTION_BRIEF), lambda: False))


def rewrite_manifest(bundle: Path) -> None:
    """Re-hash the bundle as an exporter would, so only the damage under test remains."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    files = list(manifest.pop("files"))
    manifest.pop("format")
    write_manifest(bundle, manifest, files)


def test_intact_bundle_describes(bundle):
    assert describe(bundle) == describe(bundle)  # loads twice: once hashing, once from the stamp
    assert json.loads((bundle / STAMP).read_text())["decoder_model_merged_int8.onnx"]["sha256"]


def test_missing_file_is_named(bundle):
    (bundle / "decoder_model_merged_int8.onnx").unlink()
    with pytest.raises(UserError) as error:
        describe(bundle)
    assert "decoder_model_merged_int8.onnx is missing" in error.value.problem
    assert FIX in error.value.fix


def test_truncated_onnx_is_caught_by_size(bundle):
    path = bundle / "vision_encoder_int8.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError) as error:
        describe(bundle)
    assert "vision_encoder_int8.onnx" in error.value.problem and "1000 bytes" in error.value.problem
    assert FIX in error.value.fix


def test_truncated_onnx_with_matching_manifest_fails_to_load_in_plain_words(bundle):
    path = bundle / "decoder_model_merged.onnx"
    path.write_bytes(path.read_bytes()[:5000])
    rewrite_manifest(bundle)
    with pytest.raises(UserError) as error:
        describe(bundle, precision="fp32")
    assert "decoder_model_merged.onnx" in error.value.problem and "cannot be loaded" in error.value.problem
    assert FIX in error.value.fix


def test_changed_bytes_fail_the_checksum(bundle):
    path = bundle / "embed_tokens_int8.onnx"  # the table "auto" loads on the CPU
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError) as error:
        describe(bundle)
    assert "embed_tokens_int8.onnx" in error.value.problem and "checksum" in error.value.problem
    assert FIX in error.value.fix


def test_stamp_skips_hashing_until_full_verify(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    check_bundle(bundle, manifest)
    path = bundle / "tokenizer.json"
    status = path.stat()
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))  # same size and mtime: stamp trusted
    check_bundle(bundle, manifest)
    with pytest.raises(UserError, match=r"tokenizer\.json .*checksum"):
        check_bundle(bundle, manifest, full=True)


def test_renamed_input_is_named(bundle):
    import onnx

    path = bundle / "embed_tokens_int8.onnx"
    model = onnx.load(str(path))
    model.graph.input[0].name = "token_ids"
    for node in model.graph.node:
        node.input[:] = ["token_ids" if name == "input_ids" else name for name in node.input]
    onnx.save(model, str(path))
    rewrite_manifest(bundle)
    with pytest.raises(UserError) as error:
        describe(bundle)
    assert "embed_tokens_int8.onnx" in error.value.problem and "input_ids" in error.value.problem
    assert FIX in error.value.fix


def test_folder_without_manifest_is_refused(bundle):
    (bundle / MANIFEST).unlink()
    with pytest.raises(UserError, match=r"no manifest\.json"):
        load_model(bundle)


def test_cuda_request_fails_clearly_when_cuda_cannot_run(tiny):
    """onnxruntime-gpu lists CUDA here although no GPU exists: "cuda" must say so, "auto" must fall back."""
    path = tiny[1] / "embed_tokens.onnx"
    with pytest.raises(UserError) as error:
        create_session(path, "cuda")
    assert "CUDA" in error.value.problem and "models.provider" in error.value.fix
    assert create_session(path, "auto").get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(UserError, match="unknown"):
        create_session(path, "gpu")


def test_bound_runner_keeps_chosen_outputs_on_the_device(tiny):
    import onnxruntime as ort

    runner = BoundRunner(create_session(tiny[1] / "embed_tokens.onnx", "cpu", threads=1), "embed_tokens.onnx")
    ids = np.array([[1, 5, 7]], dtype=np.int64)
    kept = runner.run({"input_ids": ids}, to_host=[])["inputs_embeds"]
    host = runner.run({"input_ids": runner.to_device(ids)}, to_host=["inputs_embeds"])["inputs_embeds"]
    assert isinstance(kept, ort.OrtValue) and isinstance(host, np.ndarray)
    assert np.array_equal(kept.numpy(), host) and host.shape == (1, 3, 64)
    with pytest.raises(UserError, match=r"embed_tokens\.onnx failed while running"):
        runner.run({"input_ids": ids.astype(np.int32)}, to_host=["inputs_embeds"])


@pytest.mark.parametrize(("name", "change"), [
    ("config.json", {"image_token_id": "abc"}),
    ("config.json", {"text_config": {"num_hidden_layers": [2]}}),
    ("preprocessor_config.json", {"image_mean": "grey"}),
    ("generation_config.json", {"eos_token_id": {"id": 3}}),
    ("processor_config.json", []),
])
def test_wrong_types_in_settings_are_named(bundle, name, change):
    path = bundle / name
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **change} if isinstance(change, dict) else change))
    rewrite_manifest(bundle)
    with pytest.raises(UserError) as error:
        describe(bundle)
    assert f"{name} in {bundle}" in error.value.problem and "damaged" in error.value.problem
    assert FIX in error.value.fix
