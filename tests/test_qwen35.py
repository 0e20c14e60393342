"""Qwen3.5's runtime against transformers: the image processor's patches, the mRoPE position ids, and
(with the tiny bundle our exporter writes in the published -OPT layout) greedy tokens equal to
`generate`, with and without a follow-up question."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from describe_screen.errors import UserError
from describe_screen.vlm import images
from describe_screen.vlm.qwen35 import ImageSettings, preprocess, rope_positions

# As published in onnx-community/Qwen3.5-0.8B-ONNX-OPT's preprocessor_config.json (see the spec).
PUBLISHED = ImageSettings(patch=16, temporal=2, merge=2, min_pixels=65536, max_pixels=16777216, resample=3,
                          rescale=1 / 255, mean=(0.5,) * 3, std=(0.5,) * 3)


def reference_processor(max_pixels: int):
    """The processor transformers uses for qwen3_5 without torchvision: Qwen2VLImageProcessorPil."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3,
                                    image_std=[0.5] * 3, resample=3,
                                    size={"shortest_edge": min(65536, max_pixels), "longest_edge": max_pixels})


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def screen_4k() -> Image.Image:
    """A 3840x2160 screen: flat areas, text-like strokes and edges, as a screenshot has."""
    from PIL import ImageDraw

    image = Image.new("RGB", (3840, 2160), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    for row in range(40):
        draw.rectangle((100, 60 + row * 50, 3700, 80 + row * 50), fill=(20 * (row % 12), 30, 200 - row * 4))
        draw.text((120, 62 + row * 50), f"Line {row} of the document, with words", fill="black")
    return image


@pytest.mark.parametrize(("image", "max_pixels"), [
    (noise(333, 517), PUBLISHED.max_pixels),  # odd sides, rounded to multiples of 32
    (noise(7, 5, 1), PUBLISHED.max_pixels),  # tiny: scaled up to min_pixels
    (noise(3000, 40, 2), PUBLISHED.max_pixels),  # very wide
    (noise(1280, 720, 3), 256 * 1024),  # a screen under the normal budget
    (screen_4k(), 96 * 1024),  # a 4K screen under the brief budget
    (screen_4k(), 480 * 1024),  # and the detailed one
], ids=["odd", "tiny", "wide", "screen-normal", "4k-brief", "4k-detailed"])
def test_patches_equal_transformers_qwen2vl_processor(image, max_pixels):
    expected = reference_processor(max_pixels)(images=image, return_tensors="np")
    got = preprocess(image, PUBLISHED, max_pixels)
    assert got.grid == tuple(expected["image_grid_thw"][0])
    assert got.pixel_values.shape == expected["pixel_values"].shape
    assert np.abs(got.pixel_values - expected["pixel_values"]).max() <= 1e-5


def test_visual_tokens_stay_within_the_budget():
    for budget in (96, 256, 480):
        _, grid_h, grid_w = preprocess(noise(1280, 720), PUBLISHED, budget * 1024).grid
        assert grid_h * grid_w // 4 <= budget
    assert preprocess(noise(1280, 720), PUBLISHED, 96 * 1024).grid == (1, 14, 26)  # 91 visual tokens


def test_an_image_too_narrow_to_describe_is_refused_in_words():
    with pytest.raises(UserError, match="too narrow"):
        images.smart_resize(10, 3000, 32, 65536, 16777216)


def tiny_rope_model():
    from transformers import Qwen3_5Config
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5Model

    config = Qwen3_5Config(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "head_dim": 16, "linear_num_key_heads": 2,
                     "linear_num_value_heads": 2, "linear_key_head_dim": 8, "linear_value_head_dim": 8,
                     "vocab_size": 300, "rope_parameters": {"rope_type": "default", "rope_theta": 1e7,
                                                            "mrope_section": [1, 1, 2], "partial_rotary_factor": 0.5}},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32},
        image_token_id=250, vision_start_token_id=251, vision_end_token_id=252)
    return Qwen3_5Model(config).eval()


@pytest.mark.parametrize("grid", [(1, 16, 16), (1, 14, 26), (1, 40, 6)])
def test_position_ids_equal_transformers_get_rope_index(grid):
    import torch

    model = tiny_rope_model()
    pads = grid[0] * grid[1] * grid[2] // 4
    ids = [10, 11, 12, 251, *[250] * pads, 252, 13, 14, 15, 16, 17]
    types = [1 if i == 250 else 0 for i in ids]
    expected, delta = model.get_rope_index(torch.tensor([ids]), torch.tensor([types]),
                                           image_grid_thw=torch.tensor([grid]))
    got, next_position = rope_positions(ids, 250, [grid], 2)
    assert np.array_equal(got, expected[:, 0].numpy())
    assert next_position - len(ids) == int(delta[0, 0])  # the rope delta decode steps add
    # the same sequence fed in two pieces (the image prefix, then the turn) gives the same positions
    cut = ids.index(252) + 1
    head, middle = rope_positions(ids[:cut], 250, [grid], 2)
    tail, end = rope_positions(ids[cut:], 250, [], 2, middle)
    assert np.array_equal(np.concatenate([head, tail], axis=1), got) and end == next_position


# -- the tiny bundle (our exporter, published -OPT layout) against transformers' generate ---------------------

NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint folder, installed fp32 bundle) of the tiny random Qwen3.5."""
    from tiny_qwen import tiny_qwen_bundle, tiny_qwen_repo

    root = tmp_path_factory.getbasetemp()
    source, _ = tiny_qwen_repo(root)
    return source, tiny_qwen_bundle(root)


@pytest.fixture(scope="module")
def reference(tiny):
    """transformers' model, tokenizer and image processor of the checkpoint (the processor class as a whole
    wants torchvision for videos, so its two parts are used the way it uses them)."""
    from tiny_qwen import torch_model
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return torch_model(tiny[0]), AutoTokenizer.from_pretrained(tiny[0]), Qwen2VLImageProcessorPil.from_pretrained(
        tiny[0])


def load(bundle, **options):
    from describe_screen.vlm import RuntimeOptions, load_model

    return load_model(bundle, RuntimeOptions(provider="cpu", max_new_tokens=NEW_TOKENS, **options))


def exact(model):
    """Stop rules that only the model's EOS ends (no loop check), as generate has."""
    from describe_screen.vlm.decoding import Limits

    return Limits(max_new_tokens=NEW_TOKENS, eos_ids=model.limits().eos_ids, repeat_span=0)


def generated(reference, ids: list[int], image, eos) -> list[int]:
    """transformers' greedy generate on prompt `ids` with `image`'s pixels, cut at the first EOS."""
    import torch

    model, _, processor = reference
    pixels = processor(images=image, return_tensors="pt")
    image_token = model.config.image_token_id
    tensor = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor),
                             mm_token_type_ids=(tensor == image_token).int(), pixel_values=pixels["pixel_values"],
                             image_grid_thw=pixels["image_grid_thw"], max_new_tokens=NEW_TOKENS, do_sample=False)
    tokens = out[0, len(ids):].tolist()
    return tokens[:next((i for i, t in enumerate(tokens) if t in eos), len(tokens))]


def chat_ids(reference, image, text: str) -> list[int]:
    """The prompt ids Qwen3VLProcessor makes for an image and a text: the checkpoint's chat template
    (non-thinking), each <|image_pad|> repeated once per visual token, then the tokenizer."""
    _, tokenizer, processor = reference
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                           enable_thinking=False)
    tokens = int(processor(images=image, return_tensors="np")["image_grid_thw"][0].prod()) // processor.merge_size ** 2
    return tokenizer(prompt.replace("<|image_pad|>", "<|image_pad|>" * tokens))["input_ids"]


def picture(width: int, height: int, seed: int) -> Image.Image:
    from PIL import ImageDraw

    image = noise(width, height, seed)
    ImageDraw.Draw(image).rectangle((width // 4, height // 4, width // 2, height // 2), fill=(250, 250, 250))
    return image


CASES = [
    (picture(200, 120, 1), "caption_brief", ""),
    (picture(97, 301, 2), "caption_full", ""),
    (picture(320, 180, 3), "ask", "What is in the box?"),
    (picture(64, 64, 4), "ask", "Is there a button?"),
]


@pytest.mark.parametrize(("image", "task", "question"), CASES, ids=["brief", "full-tall", "ask", "ask-small"])
def test_prompt_and_greedy_tokens_equal_transformers(tiny, reference, image, task, question):
    from describe_screen.vlm import Request, user_texts

    model = load(tiny[1])
    request = Request(task=task, question=question, grounding="Save  Cancel" if task == "ask" else "")
    patches = model.patches(image, task)
    ours = model.image_ids(patches) + model.turn_ids(request)
    _, text = user_texts(request, model.bundle.prompts)
    assert ours == chat_ids(reference, image, text)  # the chat template, with its empty think block
    tokens = list(model.token_ids(image, request, lambda: False, exact(model)))
    assert tokens == generated(reference, ours, image, model.limits().eos_ids)
    assert tokens  # the random model says something before its EOS


def test_follow_up_reuses_the_conversation_and_equals_generate_on_it(tiny, reference, monkeypatch):
    from describe_screen.vlm import ASK, Request, Turn

    model = load(tiny[1])
    image = picture(320, 180, 3)
    first = Request(task=ASK, question="What is in the box?")
    answer = list(model.token_ids(image, first, lambda: False, exact(model)))
    said = model.tokenizer.decode(answer, skip_special_tokens=True)
    prompt = model.image_ids(model.patches(image, ASK)) + model.turn_ids(first)

    def no_new_start(*args):
        raise AssertionError("the follow-up started the conversation again")

    monkeypatch.setattr(model, "after_image", no_new_start)
    second = Request(task=ASK, question="And the colour?", history=[Turn("What is in the box?", f" {said} ")])
    follow = list(model.token_ids(image, second, lambda: False, exact(model)))
    conversation = prompt + answer + model.follow_up_ids(second)
    assert follow == generated(reference, conversation, image, model.limits().eos_ids)
    # a third question continues from the second answer
    third = Request(task=ASK, question="Why?", history=[*second.history,
                                                        Turn("And the colour?", model.tokenizer.decode(follow))])
    again = list(model.token_ids(image, third, lambda: False, exact(model)))
    longer = conversation + follow + model.follow_up_ids(third)
    assert again == generated(reference, longer, image, model.limits().eos_ids)


def test_other_history_or_another_image_starts_afresh_with_the_same_words(tiny):
    from describe_screen.vlm import ASK, Request, Turn

    image = picture(200, 120, 1)
    request = Request(task=ASK, question="Which one?", history=[Turn("What is it?", "A box.")])
    fresh = list(load(tiny[1]).token_ids(image, request, lambda: False, exact(load(tiny[1]))))
    model = load(tiny[1])
    list(model.token_ids(image, Request(task=ASK, question="Something else?"), lambda: False, exact(model)))
    assert list(model.token_ids(image, request, lambda: False, exact(model))) == fresh  # history differs
    list(model.token_ids(picture(64, 64, 4), Request(task=ASK, question="What is it?"), lambda: False, exact(model)))
    assert list(model.token_ids(image, request, lambda: False, exact(model))) == fresh  # another image came between


def test_cache_and_logits_inputs_are_read_from_the_session(tiny):
    model = load(tiny[1])
    decoder = model.decoder()
    state = model.empty_state()
    assert set(state.cache) == {n for n in decoder.input_types if n.startswith(("past_key_values.", "past_conv.",
                                                                                "past_recurrent."))}
    for name, value in state.cache.items():
        declared = decoder.input_shapes[name]
        shape = value.shape()
        assert shape[0] == 1 and all(d == s for d, s in zip(declared[1:], shape[1:], strict=True) if isinstance(d, int))
        if name.startswith("past_key_values."):
            assert shape[2] == 0  # the growing cache starts empty
        else:
            assert 0 not in shape  # fixed states start full-size zeros


def test_streamed_words_are_the_decoded_tokens_and_cancel_stops_at_once(tiny):
    from describe_screen.vlm import CAPTION_BRIEF, Request

    model = load(tiny[1])
    image = picture(200, 120, 1)
    tokens = list(model.token_ids(image, Request(task=CAPTION_BRIEF), lambda: False))
    # a character cut off by the token limit is held back, never spoken as garbage
    assert "".join(model.stream(image, Request(task=CAPTION_BRIEF), lambda: False)) == \
        model.tokenizer.decode(tokens, skip_special_tokens=True).rstrip("\ufffd")
    assert list(model.stream(image, Request(task=CAPTION_BRIEF), lambda: True)) == []


def test_a_missing_graph_is_a_sentence_naming_it(tiny, tmp_path):
    import shutil

    from describe_screen.vlm import CAPTION_BRIEF, Request

    broken = tmp_path / "tiny"
    shutil.copytree(tiny[1], broken)
    (broken / "decoder_model_merged.onnx_data").unlink()
    with pytest.raises(UserError, match=r"decoder_model_merged\.onnx_data is missing"):
        list(load(broken).stream(picture(64, 64, 4), Request(task=CAPTION_BRIEF), lambda: False))
