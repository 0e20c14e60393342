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
