"""Florence-2: a tiny random model exported with the user-facing exporter must decode exactly like
transformers, read boxes like the transformers post-processor, and fail on bad bundles and images
with sentences a blind user can act on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from describe_screen.errors import UserError
from describe_screen.vlm import CAPTION_BRIEF, CAPTION_FULL, OCR, Request, RuntimeOptions, load_model
from describe_screen.vlm import florence2 as f2
from describe_screen.vlm.bundle import choose_precision
from describe_screen.vlm.decoding import banned_by_ngrams

TASKS = ["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>", "<OCR>", "<OCR_WITH_REGION>"]
MAX_NEW = 24
ROOT = Path(__file__).resolve().parent.parent


def _images() -> dict[str, Image.Image]:
    rng = np.random.RandomState(0)
    noise = Image.fromarray((rng.rand(100, 150, 3) * 255).astype("uint8"))
    screen = Image.new("RGB", (1280, 720), "white")
    screen.paste((30, 60, 200), (100, 100, 700, 300))
    tall = Image.fromarray((rng.rand(300, 200, 3) * 255).astype("uint8"))
    return {"noise": noise, "screen": screen, "tall": tall}


IMAGES = _images()


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_florence import build_tiny_florence

    return build_tiny_florence(tmp_path_factory.mktemp("florence-src"))


@pytest.fixture(scope="session")
def bundle(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported by the same code path as `describe-screen models export florence-2-base`."""
    from describe_screen.export import export_model

    return export_model("florence-2-base", tmp_path_factory.mktemp("bundles") / "florence-2-base",
                        precision="all", source=source)


@pytest.fixture(scope="session")
def reference(source: Path):
    """The transformers model and processor the bundle was exported from."""
    from transformers import AutoProcessor, Florence2ForConditionalGeneration

    return (Florence2ForConditionalGeneration.from_pretrained(source).eval(), AutoProcessor.from_pretrained(source))


@pytest.fixture(scope="session")
def model(bundle: Path) -> f2.Florence2:
    return load_model(bundle, RuntimeOptions(provider="cpu", precision="fp32"))


def _generate(reference, image: Image.Image, task: str) -> list[int]:
    """transformers greedy ids after the decoder start token, without the final EOS.

    forced_eos_token_id only rewrites the last token when the length limit is hit; the runtime stops
    there instead (a forced EOS has nothing to say), so the comparison switches it off.
    """
    import torch

    hf, processor = reference
    inputs = processor(images=image, text=task, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=MAX_NEW,
                          forced_eos_token_id=None)[0].tolist()
    return out[1:-1] if out[-1] == 2 else out[1:]


def test_bundle_has_onnx_community_names(bundle: Path) -> None:
    import onnx

    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["family"] == "florence2" and manifest["precisions"] == ["fp32", "int8", "fp16"]
    for name in ("vision_encoder", "encoder_model", "decoder_model_merged"):
        assert {f"{name}.onnx", f"{name}_int8.onnx", f"{name}_fp16.onnx"} <= set(manifest["files"])
    decoder = onnx.load(str(bundle / "decoder_model_merged.onnx"), load_external_data=False).graph
    inputs = [i.name for i in decoder.input]
    outputs = [o.name for o in decoder.output]
    assert inputs[:3] == ["inputs_embeds", "encoder_attention_mask", "encoder_hidden_states"]
    assert inputs[3:7] == ["past_key_values.0.decoder.key", "past_key_values.0.decoder.value",
                           "past_key_values.0.encoder.key", "past_key_values.0.encoder.value"]
    assert inputs[-1] == "use_cache_branch" and len(inputs) == 3 + 2 * 4 + 1
    assert outputs[0] == "logits" and outputs[1:5] == ["present.0.decoder.key", "present.0.decoder.value",
                                                      "present.0.encoder.key", "present.0.encoder.value"]
    assert [n.op_type for n in decoder.node].count("If") == 1


@pytest.mark.parametrize("name", [*IMAGES, "rgba", "gray"])
def test_pixel_values_equal_processor(model: f2.Florence2, reference, name: str) -> None:
    if name == "rgba":
        image = IMAGES["tall"].convert("RGBA")
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    elif name == "gray":
        image = IMAGES["noise"].convert("L")
    else:
        image = IMAGES[name]
    expected = reference[1].image_processor(image, return_tensors="np")["pixel_values"]
    got = model.pixels(image)
    assert got.shape == expected.shape == (1, 3, 768, 768)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("task", TASKS)
def test_prompt_ids_equal_processor(model: f2.Florence2, reference, task: str) -> None:
    ids = reference[1](images=IMAGES["noise"], text=task)["input_ids"][0]
    assert ids[:577] == [reference[0].config.image_token_id] * 577
    assert model.prompt_ids(task) == ids[577:]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("image", list(IMAGES))
def test_greedy_tokens_equal_transformers(model: f2.Florence2, reference, image: str, task: str) -> None:
    expected = _generate(reference, IMAGES[image], task)
    got = list(model.generate_ids(IMAGES[image], task, max_new_tokens=MAX_NEW))
    assert got == expected
    assert got[0] == 0 and len(set(got)) > 3  # forced <s>, then a varied sequence, not one token repeated


def test_stream_speaks_the_transformers_caption(bundle: Path, reference) -> None:
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision="fp32", max_new_tokens=MAX_NEW))
    expected = reference[1].batch_decode([[2, *_generate(reference, IMAGES["screen"], "<CAPTION>")]],
                                      skip_special_tokens=True)[0]
    pieces = list(model.stream(IMAGES["screen"], Request(task=CAPTION_BRIEF), lambda: False))
    assert len(pieces) > 3 and "".join(pieces) == expected


def test_tasks_map_to_task_tokens(model: f2.Florence2) -> None:
    assert model.tasks == {CAPTION_BRIEF, CAPTION_FULL, OCR}
    assert model.prompts[CAPTION_FULL] == "<DETAILED_CAPTION>"
    assert f2.task_sentence("<MORE_DETAILED_CAPTION>") == "Describe with a paragraph what is shown in the image."
    with pytest.raises(UserError, match="cannot answer questions"):
        list(model.stream(IMAGES["noise"], Request(task="ask", question="What is this?"), lambda: False))


def test_cancel_stops_within_one_step(model: f2.Florence2) -> None:
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    assert len(list(model.generate_ids(IMAGES["noise"], "<CAPTION>", cancelled=cancelled))) == 3


OCR_TEXT = ("</s><s>Save file<loc_100><loc_200><loc_300><loc_200><loc_300><loc_250><loc_100><loc_250>"
            "Cancel<loc_500><loc_600><loc_700><loc_610><loc_690><loc_660><loc_510><loc_650></s>")


def test_ocr_with_region_parsing_matches_transformers(reference) -> None:
    regions = f2.parse_regions(OCR_TEXT, 1280, 720)
    assert regions == [("Save file", (128, 144, 384, 180)), ("Cancel", (640, 432, 896, 475))]
    parsed = reference[1].post_process_generation(text=OCR_TEXT, task="<OCR_WITH_REGION>", image_size=(1280, 720))
    quads = parsed["<OCR_WITH_REGION>"]["quad_boxes"]
    assert parsed["<OCR_WITH_REGION>"]["labels"] == [text for text, _ in regions]
    assert [(min(q[0::2]), min(q[1::2]), max(q[0::2]), max(q[1::2])) for q in quads] == [b for _, b in regions]


def test_ocr_regions_decodes_loc_tokens(model: f2.Florence2, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = model.tokenizer
    ids = tokenizer.encode(OCR_TEXT[len("</s><s>"):-len("</s>")], add_special_tokens=False).ids
    assert tokenizer.token_to_id("<loc_100>") in ids
    monkeypatch.setattr(model, "generate_ids", lambda image, prompt, cancelled=None: iter([0, *ids]))
    assert model.ocr_regions(Image.new("RGB", (1280, 720))) == f2.parse_regions(OCR_TEXT, 1280, 720)
    consumed: list[int] = []

    def tokens(image, prompt, cancelled=None):
        for token in [0, *ids]:
            consumed.append(token)
            yield token

    monkeypatch.setattr(model, "generate_ids", tokens)
    lines = model.iter_lines(Image.new("RGB", (1280, 720)))
    first = next(lines)
    assert (first.text, first.box, first.score) == ("Save file", (128, 144, 384, 180), 1.0)
    assert len(consumed) < len(ids) / 2 + 2  # streamed: out before the second line's tokens were read
    assert [line.text for line in lines] == ["Cancel"]


def test_no_repeat_ngram_ban() -> None:
    assert banned_by_ngrams([2, 5, 7, 9, 5, 7], 3) == [9]
    assert banned_by_ngrams([2, 0, 5, 7, 5, 7], 3) == [5]
    assert banned_by_ngrams([2, 0], 3) == []


def test_int8_and_fp16_run_and_mostly_agree(bundle: Path, reference) -> None:
    agree = total = 0
    for precision in ("int8", "fp16"):
        quantised = load_model(bundle, RuntimeOptions(provider="cpu", precision=precision))
        for image in IMAGES.values():
            expected = _generate(reference, image, "<CAPTION>")
            got = list(quantised.generate_ids(image, "<CAPTION>", max_new_tokens=MAX_NEW))
            assert got[0] == 0 and len(got) >= 4
            agree += sum(a == b for a, b in zip(got, expected, strict=False))
            total += max(len(got), len(expected))
    assert agree / total > 0.5


def test_auto_precision_prefers_int8_on_cpu() -> None:
    assert choose_precision("auto", ["fp32", "int8"], "cpu") == "int8"
    assert choose_precision("auto", ["fp32", "int8", "fp16"], "cuda") == "fp16"
    assert choose_precision("auto", ["fp32"], "cpu") == "fp32"
    with pytest.raises(UserError, match="no fp16 weights"):
        choose_precision("fp16", ["fp32", "int8"], "cpu")


def test_tiny_image_is_refused(model: f2.Florence2) -> None:
    with pytest.raises(UserError, match="only 1 by 1 pixels") as info:
        list(model.generate_ids(Image.new("RGB", (1, 1)), "<CAPTION>"))
    assert "Capture" in info.value.fix


def test_huge_image_is_shrunk_then_described(model: f2.Florence2) -> None:
    huge = Image.new("L", (20000, 20000), 255)
    huge.paste(0, (4000, 4000, 12000, 9000))
    pixels = model.pixels(huge)
    expected = model.pixels(huge.reduce(3).convert("RGB"))
    np.testing.assert_array_equal(pixels, expected)
    assert pixels.min() < -1.5 and pixels.max() > 1.5  # the dark block survived the shrink
    del huge
    assert len(list(model.generate_ids(Image.new("RGB", (9000, 300), "white"), "<CAPTION>", max_new_tokens=4))) == 4


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "florence-2-base"
    shutil.copytree(bundle, target)
    return target


def test_missing_file_is_named(bundle: Path, tmp_path: Path) -> None:
    broken = _copy(bundle, tmp_path)
    (broken / "decoder_model_merged.onnx").unlink()
    with pytest.raises(UserError, match=r"decoder_model_merged\.onnx is missing") as info:
        load_model(broken, RuntimeOptions(provider="cpu", precision="fp32")).warm_up()
    assert info.value.fix == "Replace it with: describe-screen models install florence-2-base."


def test_truncated_file_is_named(bundle: Path, tmp_path: Path) -> None:
    broken = _copy(bundle, tmp_path)
    path = broken / "encoder_model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"encoder_model\.onnx .* incomplete"):
        load_model(broken, RuntimeOptions(provider="cpu", precision="fp32")).warm_up()


def test_truncated_file_with_matching_manifest_cannot_load(bundle: Path, tmp_path: Path) -> None:
    from describe_screen.vlm.manifest import describe_files

    broken = _copy(bundle, tmp_path)
    path = broken / "vision_encoder.onnx"
    path.write_bytes(path.read_bytes()[:5000])
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["files"].update(describe_files(broken, ["vision_encoder.onnx"]))
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"vision_encoder\.onnx .* cannot be loaded"):
        load_model(broken, RuntimeOptions(provider="cpu", precision="fp32")).warm_up()


def test_checksum_mismatch_is_named(bundle: Path, tmp_path: Path) -> None:
    broken = _copy(bundle, tmp_path)
    path = broken / "decoder_model_merged_int8.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"decoder_model_merged_int8\.onnx .* checksum"):
        load_model(broken, RuntimeOptions(provider="cpu", precision="int8")).warm_up()


def test_runtime_imports_no_torch(bundle: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from PIL import Image\n"
        "from describe_screen.vlm import RuntimeOptions, Request, load_model\n"
        f"m = load_model(Path({str(bundle)!r}), RuntimeOptions(provider='cpu', max_new_tokens=5))\n"
        "text = ''.join(m.stream(Image.new('RGB', (64, 48), 'white'), Request(task='caption_brief'), lambda: False))\n"
        "print(m.provider(), len(text) > 0, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CPUExecutionProvider", "True", "False", "False"]


def test_onnx_community_layout_imports_and_runs(bundle: Path, model: f2.Florence2, tmp_path: Path) -> None:
    """A download laid out like onnx-community/Florence-2-base (graphs in onnx/, configs on top)."""
    from describe_screen import models

    download = tmp_path / "Florence-2-base"
    (download / "onnx").mkdir(parents=True)
    for path in bundle.iterdir():
        if path.suffix == ".onnx":
            shutil.copy(path, download / "onnx" / path.name)
        elif path.suffix == ".json" and path.name != "manifest.json":
            shutil.copy(path, download / path.name)
    installed = models.import_bundle(download, "florence-2-base", tmp_path / "models")
    imported = load_model(installed.path, RuntimeOptions(provider="cpu", precision="fp32"))
    expected = list(model.generate_ids(IMAGES["screen"], "<OCR>", max_new_tokens=MAX_NEW))
    assert list(imported.generate_ids(IMAGES["screen"], "<OCR>", max_new_tokens=MAX_NEW)) == expected


# Weight sets as onnx-community publishes them (see describe_screen/vlm/florence2.py): the type of the
# decoder's inputs_embeds and cache, an operator only that weight set has, and the share of teacher-forced
# tokens that must agree with fp32 on the tiny random model.
PUBLISHED = {
    "fp16": ("tensor(float16)", "Cast", 0.9),
    "int8": ("tensor(float)", "MatMulInteger", 0.8),
    "q4": ("tensor(float)", "MatMulNBits", 0.4),  # 4 bits on a 32-wide random model: 0.57 measured
    "q4f16": ("tensor(float16)", "MatMulNBits", 0.4),
}


@pytest.fixture(scope="session")
def published(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny import published_bundle

    return published_bundle(bundle, tmp_path_factory.mktemp("published") / "florence-2-base")


@pytest.mark.parametrize("precision", list(PUBLISHED))
def test_published_weight_set_is_fed_as_its_signature_says_and_agrees_with_fp32(published: Path,
                                                                                 precision: str) -> None:
    import onnx

    float_type, operator, agreement = PUBLISHED[precision]
    model = load_model(published, RuntimeOptions(provider="cpu", precision=precision))
    labels = {graph: model.bundle.runner(graph).label for graph in f2.GRAPHS}
    assert labels == {graph: graph.file.replace(".onnx", f"_{precision}.onnx") for graph in f2.GRAPHS}
    decoder = model.bundle.runner(f2.DECODER)
    assert decoder.input_types["inputs_embeds"] == decoder.input_types["past_key_values.0.encoder.key"] == float_type
    assert decoder.input_types["use_cache_branch"] == "tensor(bool)"
    assert operator in {node.op_type for node in onnx.load(str(published / labels[f2.DECODER])).graph.node}
    fp32 = load_model(published, RuntimeOptions(provider="cpu", precision="fp32"))
    same = total = 0
    for image in IMAGES.values():
        answer = list(fp32.generate_ids(image, "<CAPTION>", max_new_tokens=MAX_NEW))
        choices = model.forced_choices(image, "<CAPTION>", answer)
        assert choices[0] == 0  # the forced <s>
        same += sum(a == b for a, b in zip(answer, choices, strict=True))
        total += len(answer)
    print(f"{precision} teacher-forced token agreement with fp32 (tiny random Florence-2): {same / total:.3f}")
    assert same / total >= agreement


def test_a_bundle_of_one_published_weight_set_loads_with_auto(bundle: Path, tmp_path: Path) -> None:
    """What `models install florence-2-base --precision q4` stores: four q4 graphs and no fp32 file."""
    from tiny import published_bundle

    only = published_bundle(bundle, tmp_path / "florence-2-base", precisions=("q4",))
    assert not (only / "decoder_model_merged.onnx").exists()
    model = load_model(only, RuntimeOptions(provider="auto"))
    ids = list(model.generate_ids(IMAGES["noise"], "<CAPTION>", max_new_tokens=6))
    assert model.bundle.precision == "q4" and model.bundle.runner(f2.ENCODER).label == "encoder_model_q4.onnx"
    assert len(ids) == 6 and ids[0] == 0
