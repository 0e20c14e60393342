"""SmolVLM ONNX runtime against transformers: pixels, prompt ids and greedy tokens must be identical."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import tiny_smolvlm_bundle

from describe_screen.errors import UserError
from describe_screen.vlm import (
    ASK,
    CAPTION_BRIEF,
    CAPTION_FULL,
    GROUNDING_CHARS,
    Request,
    RuntimeOptions,
    Turn,
    load_model,
    user_texts,
)
from describe_screen.vlm.decoding import Limits, greedy, repeating_tail, stream_text
from describe_screen.vlm.smolvlm import DECODER, EMBED, VISION, preprocess

ROOT = Path(__file__).resolve().parent.parent
NEW_TOKENS = 24
FORCED = Limits(max_new_tokens=NEW_TOKENS, repeat_span=0)  # no EOS, no loop stop: exactly NEW_TOKENS


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def torch_model(tiny):
    from transformers import SmolVLMForConditionalGeneration

    return SmolVLMForConditionalGeneration.from_pretrained(tiny[0]).eval()


def picture(width: int, height: int, seed: int) -> Image.Image:
    """Smooth random colours plus noise: resampling filters differ on both kinds of content."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(width, 1), y * 255 / max(height, 1), (x + y) % 256], axis=-1)
    noise = rng.integers(0, 60, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def reference(source: Path, image: Image.Image, split: bool, request: Request, prompts: dict):
    """Pixels and prompt ids made by transformers itself (image processor, chat template, tokenizer)."""
    from transformers import AutoTokenizer
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
    from transformers.models.smolvlm.processing_smolvlm import get_image_prompt_string

    processed = SmolVLMImageProcessorPil.from_pretrained(source)(
        images=[[image]], do_image_splitting=split, return_row_col_info=True, return_tensors="np")
    tokenizer = AutoTokenizer.from_pretrained(source)
    first, current = user_texts(request, prompts)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": first}]}]
    for index, turn in enumerate(request.history):
        if index:
            messages.append({"role": "user", "content": [{"type": "text", "text": turn.question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer}]})
    if request.history:
        messages.append({"role": "user", "content": [{"type": "text", "text": current}]})
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    seq_len = json.loads((source / "processor_config.json").read_text())["image_seq_len"]
    expanded = get_image_prompt_string(processed["rows"][0][0], processed["cols"][0][0], seq_len,
                                       "<fake_token_around_image>", "<image>", "<global-img>")
    ids = tokenizer(text.replace("<image>", expanded, 1))["input_ids"]
    return processed, ids


CASES = [
    (picture(200, 90, 1), "fast", Request(task=CAPTION_BRIEF)),
    (picture(200, 90, 1), "default", Request(task=CAPTION_FULL)),
    (picture(70, 260, 2), "default", Request(task=ASK, question="What does the dialog say?")),
    (picture(300, 300, 3), "fast", Request(task=ASK, question="Which button is focused?",
                                          grounding="Save  Cancel")),
    (picture(130, 65, 4), "default", Request(
        task=ASK, question="And the second one?", grounding="File Edit View",
        history=[Turn("What buttons are there?", " OK and Cancel."), Turn("Which is first?", " OK.")])),
]


@pytest.mark.parametrize(("image", "tiles", "request_"), CASES)
def test_onnx_greedy_tokens_equal_transformers_generate(tiny, torch_model, image, tiles, request_):
    import torch

    source, bundle = tiny
    model = load_model(bundle, RuntimeOptions(tiles=tiles, precision="fp32", provider="cpu"))
    processed, ids = reference(source, image, tiles == "default", request_, model.manifest["prompts"])

    tiles_made = preprocess(image, model.settings, split=tiles == "default")
    assert np.abs(tiles_made.pixel_values - processed["pixel_values"][0]).max() < 1e-5
    assert processed["pixel_attention_mask"][0].all()  # so the runtime's all-ones mask is the same mask
    assert (tiles_made.rows, tiles_made.cols) == (processed["rows"][0][0], processed["cols"][0][0])
    assert model.prompt_ids(request_, tiles_made) == ids

    with torch.no_grad():
        out = torch_model.generate(
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            pixel_values=torch.from_numpy(processed["pixel_values"]),
            pixel_attention_mask=torch.from_numpy(processed["pixel_attention_mask"]),
            max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
    expected = out[0, len(ids):].tolist()
    assert list(model.token_ids(image, request_, lambda: False, FORCED)) == expected


@pytest.mark.parametrize("size", [(1, 1), (1, 40), (500, 3), (64, 64), (1280, 720)])
@pytest.mark.parametrize("split", [False, True])
def test_pixels_equal_processor_for_odd_sizes(tiny, size, split):
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    source, bundle = tiny
    image = picture(*size, seed=sum(size))
    model = load_model(bundle, RuntimeOptions(provider="cpu"))
    expected = SmolVLMImageProcessorPil.from_pretrained(source)(
        images=[[image]], do_image_splitting=split, return_tensors="np")["pixel_values"][0]
    made = preprocess(image, model.settings, split).pixel_values
    assert made.shape == expected.shape
    assert np.abs(made - expected).max() < 1e-5


def test_transparent_image_is_laid_over_white_like_transformers(tiny):
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    source, bundle = tiny
    rgba = picture(90, 50, 7).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((90, 50)))
    model = load_model(bundle, RuntimeOptions(provider="cpu"))
    expected = SmolVLMImageProcessorPil.from_pretrained(source)(images=[[rgba]], do_image_splitting=False,
                                                                return_tensors="np")["pixel_values"][0]
    assert np.abs(preprocess(rgba, model.settings, False).pixel_values - expected).max() < 1e-5


def test_huge_capture_is_reduced_without_full_size_copies(tiny):
    _, bundle = tiny
    model = load_model(bundle, RuntimeOptions(provider="cpu"))
    huge = Image.new("L", (20000, 20000), 200)  # 400 MB as 8-bit grey; an RGB copy would be 1.2 GB
    started = time.perf_counter()
    tiles = preprocess(huge, model.settings, split=True)
    assert time.perf_counter() - started < 20
    assert tiles.pixel_values.shape == (17, 3, 64, 64)  # 4 x 4 tiles + the global one
    assert np.allclose(tiles.pixel_values, 200 / 255 * 2 - 1, atol=1e-5)  # grey 200, normalised


def test_empty_image_and_empty_question_are_refused_in_plain_words(tiny):
    _, bundle = tiny
    model = load_model(bundle, RuntimeOptions(provider="cpu"))
    with pytest.raises(UserError, match="empty") as empty_image:
        list(model.stream(Image.new("RGB", (0, 0)), Request(task=CAPTION_BRIEF), lambda: False))
    assert "Capture" in empty_image.value.fix
    with pytest.raises(UserError, match="question is empty") as empty_question:
        list(model.stream(picture(50, 50, 0), Request(task=ASK, question="   "), lambda: False))
    assert "Type or say a question" in empty_question.value.fix


def test_user_texts_cap_grounding_and_refuse_unknown_tasks():
    prompts = {"caption_brief": "Describe.", "ask": "{question}", "grounding": "Text:\n{text}\n\n"}
    first, current = user_texts(Request(task=ASK, question=" Why? ", grounding="word " * 2000), prompts)
    assert first == current and current.startswith("Text:\nword word") and current.endswith("\n\nWhy?")
    # the one limit every model and the describer share, wherever the grounding comes from
    assert len(current) == len("Text:\n") + GROUNDING_CHARS + len("\n\nWhy?")
    history = [Turn("What is shown?", " A dialog.")]
    assert user_texts(Request(task=ASK, question="Which?", history=history), prompts) == ("What is shown?", "Which?")
    with pytest.raises(UserError, match="cannot do the task 'ocr'"):
        user_texts(Request(task="ocr"), prompts)


def test_streamed_text_joins_to_the_full_decode(tiny):
    from tokenizers import Tokenizer

    _, bundle = tiny
    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision="fp32"))
    image, request = picture(120, 80, 5), Request(task=CAPTION_BRIEF)
    ids = list(model.token_ids(image, request, lambda: False, FORCED))
    pieces = list(stream_text(tokenizer, ids))
    assert len(pieces) > 1
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    # characters of 2-4 bytes split over byte-level tokens, with special tokens in between
    text_ids = tokenizer.encode("Café — naïve ✓ 日本語 <end_of_utterance> テキスト €4").ids
    joined = "".join(stream_text(tokenizer, text_ids))
    assert joined == tokenizer.decode(text_ids, skip_special_tokens=True)
    assert "日本語" in joined and "<end_of_utterance>" not in joined


def test_stream_stops_at_once_when_cancelled(tiny):
    _, bundle = tiny
    model = load_model(bundle, RuntimeOptions(provider="cpu"))
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 4  # 1 check before the vision batch, then one before each decoder step

    ids = list(model.token_ids(picture(60, 60, 1), Request(task=CAPTION_BRIEF), cancelled, FORCED))
    assert len(ids) == 3


def test_int8_bundle_agrees_with_fp32(tiny):
    """Teacher-forced agreement: int8 predicts each next token of the fp32 answer; one early
    difference in free-running decoding would otherwise hide all later agreement."""
    _, bundle = tiny
    fp32 = load_model(bundle, RuntimeOptions(provider="cpu", precision="fp32"))
    int8 = load_model(bundle, RuntimeOptions(provider="cpu", precision="int8"))
    assert int8.bundle.runner(DECODER).label == "decoder_model_merged_int8.onnx"
    same = total = 0
    for image, tiles, request in CASES:
        fp32.options.tiles = int8.options.tiles = tiles
        answer = list(fp32.token_ids(image, request, lambda: False, FORCED))
        assert fp32.forced_choices(image, request, answer) == answer
        choices = int8.forced_choices(image, request, answer)
        same += sum(x == y for x, y in zip(answer, choices, strict=True))
        total += len(answer)
    agreement = same / total
    print(f"int8 teacher-forced token agreement with fp32 (tiny random model): {agreement:.3f}")
    assert agreement >= 0.8


def test_fp16_variant_runs_with_float32_inputs_and_agrees(tiny, tmp_path):
    import shutil

    from describe_screen.export.common import make_variants
    from describe_screen.vlm.manifest import MANIFEST, write_manifest

    bundle = Path(shutil.copytree(tiny[1], tmp_path / "tiny-smolvlm"))
    make_variants(bundle, ("vision_encoder.onnx", "decoder_model_merged.onnx"), ["fp32", "fp16"])
    manifest = json.loads((bundle / MANIFEST).read_text())
    write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("files", "format")},
                   [*manifest["files"], "vision_encoder_fp16.onnx", "decoder_model_merged_fp16.onnx"])
    fp32 = load_model(bundle, RuntimeOptions(provider="cpu", precision="fp32"))
    fp16 = load_model(bundle, RuntimeOptions(provider="cpu", precision="fp16"))
    assert fp16.bundle.runner(VISION).label == "vision_encoder_fp16.onnx"
    image, request = CASES[2][0], CASES[2][2]
    answer = list(fp32.token_ids(image, request, lambda: False, FORCED))
    choices = fp16.forced_choices(image, request, answer)
    assert sum(a == b for a, b in zip(answer, choices, strict=True)) >= 0.9 * len(answer)


def test_warm_up_runs_on_the_cpu_and_eos_ends_the_answer(tiny):
    _, bundle = tiny
    model = load_model(bundle, RuntimeOptions(provider="auto", max_new_tokens=12))
    model.warm_up()
    assert model.provider() == "CPUExecutionProvider"
    assert model.bundle.runner(DECODER).label == "decoder_model_merged_int8.onnx"  # "auto" on a CPU = int8
    assert model.tasks == {CAPTION_BRIEF, CAPTION_FULL, ASK}
    eos = model.limits().eos_ids
    assert model.tokenizer.token_to_id("<end_of_utterance>") in eos
    ids = list(model.token_ids(picture(80, 40, 9), Request(task=CAPTION_BRIEF), lambda: False))
    assert 1 <= len(ids) <= 12 and not eos & set(ids)


def test_greedy_loop_stops_on_eos_limit_and_repetition():
    vocab = 10

    def scripted(sequence: list[int]):
        tokens = iter(sequence)

        def step(_ids: list[int]) -> np.ndarray:
            logits = np.zeros(vocab, dtype=np.float32)
            logits[next(tokens)] = 1.0
            return logits

        return step

    assert list(greedy(scripted([4, 5, 2, 6]), [1], Limits(eos_ids=frozenset({2})))) == [4, 5]
    assert list(greedy(scripted([4, 5, 6, 7]), [1], Limits(max_new_tokens=3))) == [4, 5, 6]
    looping = [3, 4, 5, 6, 7, 8] * 5
    out = list(greedy(scripted(looping), [1], Limits(repeat_span=16, min_repeats=3)))
    assert len(out) == 18 and out == looping[:18]  # three copies of the 6-token line, then stop
    assert not repeating_tail([1, 2, 3, 4, 1, 2, 3, 5], Limits())
    assert repeating_tail([9] * 16, Limits())
    assert not repeating_tail([9] * 15, Limits())


def test_runtime_never_imports_torch_or_transformers(tiny):
    _, bundle = tiny
    script = f"""
import sys
from PIL import Image
from describe_screen.vlm import load_model, Request, RuntimeOptions
from describe_screen import models
import describe_screen.export, describe_screen.export.common, describe_screen.vlm.smolvlm
model = load_model({str(bundle)!r}, RuntimeOptions(provider="cpu", max_new_tokens=4))
text = "".join(model.stream(Image.new("RGB", (40, 30), "red"), Request(task="caption_brief"), lambda: False))
models.verify("tiny-smolvlm", model.path.parent)
heavy = sorted(m for m in ("torch", "transformers", "onnx") if m in sys.modules)
print("HEAVY", heavy)
"""
    script = script.replace(f"load_model({str(bundle)!r}", f"load_model(__import__('pathlib').Path({str(bundle)!r})")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HEAVY []" in done.stdout


# What the published files of each weight set take and use (see describe_screen/vlm/smolvlm.py): the type of
# the decoder's inputs_embeds, the type of its cache, an operator only that weight set has, and how many
# teacher-forced tokens must agree with fp32 on the tiny random model.
PUBLISHED = {
    "fp16": ("tensor(float)", "tensor(float16)", "Cast", 0.9),
    "int8": ("tensor(float)", "tensor(float)", "MatMulInteger", 0.8),
    "q4": ("tensor(float)", "tensor(float)", "MatMulNBits", 0.3),  # 4 bits: 34% logit error on this tiny model
    "q4f16": ("tensor(float)", "tensor(float16)", "MatMulNBits", 0.3),
}


@pytest.fixture(scope="session")
def published(tiny, tmp_path_factory):
    from tiny import published_bundle

    return published_bundle(tiny[1], tmp_path_factory.mktemp("published") / "smolvlm-256m-instruct",
                            {"decoder_model_merged.onnx": ["inputs_embeds"]})


@pytest.mark.parametrize("precision", list(PUBLISHED))
def test_published_weight_set_is_fed_as_its_signature_says_and_agrees_with_fp32(published, precision):
    import onnx

    embeds_type, cache_type, operator, agreement = PUBLISHED[precision]
    model = load_model(published, RuntimeOptions(provider="cpu", precision=precision))
    decoder, vision = model.bundle.runner(DECODER), model.bundle.runner(VISION)
    assert decoder.label == f"decoder_model_merged_{precision}.onnx"
    assert model.bundle.runner(EMBED).label == f"embed_tokens_{precision}.onnx"
    assert decoder.input_types["inputs_embeds"] == embeds_type
    assert decoder.input_types["past_key_values.0.key"] == cache_type
    assert len(vision.input_shapes["pixel_values"]) == 5  # (batch, images, 3, H, W)
    assert operator in {node.op_type for node in onnx.load(str(published / decoder.label)).graph.node}
    fp32 = load_model(published, RuntimeOptions(provider="cpu", precision="fp32"))
    same = total = 0
    for image, tiles, request in CASES:
        fp32.options.tiles = model.options.tiles = tiles
        answer = list(fp32.token_ids(image, request, lambda: False, FORCED))
        choices = model.forced_choices(image, request, answer)
        same += sum(x == y for x, y in zip(answer, choices, strict=True))
        total += len(answer)
    print(f"{precision} teacher-forced token agreement with fp32 (tiny random model): {same / total:.3f}")
    assert same / total >= agreement


def test_auto_takes_int8_on_the_cpu_from_a_bundle_of_every_weight_set(published):
    model = load_model(published, RuntimeOptions(provider="auto"))
    assert model.bundle.precision == "int8" and model.bundle.precisions() == ["fp32", "fp16", "int8", "q4", "q4f16"]
    text = "".join(model.stream(picture(80, 40, 3), Request(task=CAPTION_BRIEF), lambda: False))
    assert text.strip()
