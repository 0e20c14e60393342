"""The Qwen3.5 exporter's graphs against PyTorch on the same tiny random weights, fed by a minimal loop here.

These check the GRAPHS and the published contract (names, cache shapes, fused operators); token parity
through the runtime family module is tested with the runtime.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from tiny_qwen import tiny_qwen_repo, torch_model

# square, wide, tall; two images of one size and of two sizes in one call, and a two-frame grid (each frame
# attends only to itself: as a batch when frames are equal, through a mask otherwise)
GRIDS = [[[1, 4, 4]], [[1, 2, 6]], [[1, 6, 2]], [[1, 8, 4]], [[1, 4, 4], [1, 4, 4]], [[1, 4, 4], [1, 2, 4]],
         [[2, 4, 4]]]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    source, repo = tiny_qwen_repo(tmp_path_factory.getbasetemp(), ("fp32", "q4", "fp16"))
    return source, repo, torch_model(source)


def dequantize(weight: torch.Tensor) -> torch.Tensor:
    """A (out, in) weight as the q4 graph multiplies by it: quantised by the exporter, then dequantised here
    from MatMulNBits' documented layout (low nibble first, (q - zero_point) * scale per block of 32)."""
    from describe_screen.export.graph import quantize_4bit

    packed, scales, zero_points = quantize_4bit(weight.detach().numpy().T)
    values = np.stack([packed & 15, packed >> 4], -1).reshape(*packed.shape[:2], 32).astype(np.float32)
    zero = np.stack([zero_points & 15, zero_points >> 4], -1).reshape(len(zero_points), -1)[:, :packed.shape[1]]
    full = (values - zero[:, :, None].astype(np.float32)) * scales[:, :, None]
    return torch.from_numpy(full.reshape(len(full), -1)[:, :weight.shape[1]].copy())


@pytest.fixture(scope="session")
def dequantized(tiny):
    """The tiny torch model with every weight the q4 graphs quantise replaced by its 4-bit value (the decoder's
    projections and untied lm_head, the vision tower's projections and patch embedding; not the float
    b/a gate projections): the q4 graphs must compute exactly what it computes."""
    import copy

    model = copy.deepcopy(tiny[2])
    with torch.no_grad():
        model.lm_head.weight = torch.nn.Parameter(dequantize(model.lm_head.weight))
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name != "lm_head" and not name.endswith(("_b", "_a")):
                module.weight.copy_(dequantize(module.weight))
        conv = model.model.visual.patch_embed.proj.weight
        conv.copy_(dequantize(conv.reshape(len(conv), -1)).reshape(conv.shape))
    return model


def session(repo, graph, precision="fp32"):
    import onnxruntime as ort

    from describe_screen.export.qwen35 import file_name

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(repo / "onnx" / file_name(graph, precision)), options,
                                providers=["CPUExecutionProvider"])


def published_present(past: str) -> str:
    """The output that feeds input `past` at the next step, in the published graphs."""
    return past.replace("past_key_values.", "present.").replace("past_", "present_")


class OnnxDecoder:
    """The least a runtime does: empty caches from the session's own metadata, present fed back as past.
    `present` names the output that feeds each past input (another exporter names them differently)."""

    def __init__(self, sess, batch: int = 1, present=published_present, dims: dict | None = None) -> None:
        self.sess = sess
        self.present = present
        self.keep = "num_logits_to_keep" in {i.name for i in sess.get_inputs()}
        self.past = {}
        for info in sess.get_inputs():
            if info.name.startswith("past"):
                sizes = {"batch_size": batch, **(dims or {})}
                shape = [sizes.get(d, 0) if isinstance(d, str) else d for d in info.shape]
                self.past[info.name] = np.zeros(shape, np.float16 if info.type == "tensor(float16)" else np.float32)
        self.length = 0

    def __call__(self, embeds: np.ndarray, positions: np.ndarray, keep: int = 1) -> np.ndarray:
        batch, seq, _ = embeds.shape
        feed = {"inputs_embeds": embeds.astype(np.float32), "position_ids": positions.astype(np.int64),
                "attention_mask": np.ones((batch, self.length + seq), np.int64), **self.past}
        if self.keep:
            feed["num_logits_to_keep"] = np.array(keep, np.int64)
        names = [o.name for o in self.sess.get_outputs()]
        out = dict(zip(names, self.sess.run(None, feed), strict=True))
        for name in self.past:
            self.past[name] = out[self.present(name)]
        self.length += seq
        return out["logits"]


class TorchDecoder:
    """transformers' text model with its own cache, fed the same embeddings and 3-row position ids."""

    def __init__(self, model) -> None:
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache(config=model.config.text_config)

    @torch.no_grad()
    def __call__(self, embeds: np.ndarray, positions: np.ndarray) -> np.ndarray:
        out = self.model.model.language_model(inputs_embeds=torch.from_numpy(embeds).float(),
                                              position_ids=torch.from_numpy(positions).long(), cache=self.cache,
                                              use_cache=True)
        return self.model.lm_head(out.last_hidden_state).numpy()


def image_prompt(model, grid, words=(5, 6, 7)):
    """input_ids with one image's pads between vision_start/end, and get_rope_index's 3-row positions."""
    config = model.config
    pads = grid[0] * grid[1] * grid[2] // 4
    ids = [*words, config.vision_start_token_id, *[config.image_token_id] * pads, config.vision_end_token_id, 8, 9, 10]
    input_ids = torch.tensor([ids])
    types = (input_ids == config.image_token_id).int()
    positions, delta = model.model.get_rope_index(input_ids, types, image_grid_thw=torch.tensor([grid]))
    return input_ids, positions.numpy(), int(delta[0, 0])


def test_embed_tokens_equal_the_checkpoint_table(tiny):
    _, repo, model = tiny
    ids = np.array([[0, 5, 17, 399], [3, 2, 1, 0]], np.int64)
    got = session(repo, "embed_tokens").run(None, {"input_ids": ids})[0]
    assert np.array_equal(got, model.get_input_embeddings()(torch.from_numpy(ids)).detach().numpy())


@pytest.mark.parametrize("precision", ["fp32", "q4"])
@pytest.mark.parametrize("grids", GRIDS, ids=lambda g: "+".join("x".join(map(str, x)) for x in g))
def test_vision_encoder_matches_the_torch_tower_for_any_grid(tiny, dequantized, grids, precision):
    _, repo, model = tiny
    model = dequantized if precision == "q4" else model
    grid = torch.tensor(grids)
    pixels = torch.randn(int(grid.prod(-1).sum()), 1536, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.model.visual(pixels, grid_thw=grid).pooler_output.numpy()
    got = session(repo, "vision_encoder", precision).run(None, {"pixel_values": pixels.numpy(),
                                                               "image_grid_thw": grid.numpy()})[0]
    assert got.shape == (len(pixels) // 4, model.config.text_config.hidden_size)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "q4"])
def test_decoder_prefill_steps_and_follow_up_match_torch(tiny, dequantized, precision):
    _, repo, model = tiny
    model = dequantized if precision == "q4" else model
    embed = model.get_input_embeddings()
    input_ids, positions, delta = image_prompt(model, [1, 4, 6])
    rng = np.random.default_rng(0)
    embeds = embed(input_ids).detach().numpy()
    embeds[0, input_ids[0].numpy() == model.config.image_token_id] = rng.normal(0, 1, (6, embeds.shape[-1]))
    ours, theirs = OnnxDecoder(session(repo, "decoder_model_merged", precision)), TorchDecoder(model)
    got, want = ours(embeds, positions, keep=0), theirs(embeds, positions)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    length = embeds.shape[1]
    tokens_ours, tokens_theirs = [int(got[0, -1].argmax())], [int(want[0, -1].argmax())]
    for _ in range(20):
        step = np.full((3, 1, 1), length + delta)
        got = ours(embed(torch.tensor([[tokens_ours[-1]]])).detach().numpy(), step)
        want = theirs(embed(torch.tensor([[tokens_theirs[-1]]])).detach().numpy(), step)
        np.testing.assert_allclose(got, want[:, -1:], atol=1e-4, rtol=1e-4)
        tokens_ours.append(int(got[0, -1].argmax()))
        tokens_theirs.append(int(want[0, -1].argmax()))
        length += 1
    assert tokens_ours == tokens_theirs
    assert len(set(tokens_ours)) > 3  # the tiny model says something, not one token over and over
    # a follow-up question: several new tokens on top of the cache
    follow = np.array([[11, 12, 13, 14]])
    step = np.ascontiguousarray(np.broadcast_to(np.arange(length, length + 4) + delta, (3, 1, 4)))
    got = ours(embed(torch.from_numpy(follow)).detach().numpy(), step, keep=1)
    want = theirs(embed(torch.from_numpy(follow)).detach().numpy(), step)
    np.testing.assert_allclose(got, want[:, -1:], atol=1e-4, rtol=1e-4)


def test_q4_embed_tokens_are_the_table_within_half_a_4bit_step(tiny):
    _, repo, model = tiny
    table = model.get_input_embeddings().weight.detach().numpy()
    ids = np.arange(len(table), dtype=np.int64)[None]
    got = session(repo, "embed_tokens", "q4").run(None, {"input_ids": ids})[0][0]
    np.testing.assert_allclose(got, dequantize(torch.from_numpy(table)).numpy(), atol=1e-6)
    blocks = table.reshape(len(table), -1, 32)
    step = (blocks.max(-1) - blocks.min(-1)) / 15
    assert (np.abs(got - table).reshape(blocks.shape) <= step[:, :, None] / 2 + 1e-6).all()
    nodes = onnx.load(str(repo / "onnx" / "embed_tokens_q4.onnx"), load_external_data=False).graph.node
    assert [(n.domain, n.op_type) for n in nodes] == [("com.microsoft", "GatherBlockQuantized")]


def test_q4_graphs_multiply_4bit_blocks_of_32_with_float32_activations(tiny):
    _, repo, _ = tiny
    for graph in ("vision_encoder", "decoder_model_merged"):
        model = onnx.load(str(repo / "onnx" / f"{graph}_q4.onnx"), load_external_data=False)
        assert {i.type.tensor_type.elem_type for i in model.graph.input} <= {onnx.TensorProto.FLOAT,
                                                                           onnx.TensorProto.INT64}
        quantised = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
        assert quantised and not [n for n in model.graph.node if n.op_type == "MatMul" and
                                  not n.name.endswith(("linear_attn.ba/MatMul",))]
        for node in quantised:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert (attrs["bits"], attrs["block_size"]) == (4, 32)


def test_decoder_has_the_published_inputs_outputs_caches_and_fused_ops(tiny):
    source, repo, _ = tiny
    config = json.loads((source / "config.json").read_text())["text_config"]
    sess = session(repo, "decoder_model_merged")
    inputs = {i.name: i for i in sess.get_inputs()}
    outputs = {o.name: o for o in sess.get_outputs()}
    assert list(inputs)[:4] == ["inputs_embeds", "attention_mask", "position_ids", "num_logits_to_keep"]
    assert inputs["position_ids"].shape == [3, "batch_size", "sequence_length"]
    full = [i for i, kind in enumerate(config["layer_types"]) if kind == "full_attention"]
    linear = [i for i, kind in enumerate(config["layer_types"]) if kind == "linear_attention"]
    assert full == [3, 7] and linear == [0, 1, 2, 4, 5, 6]
    conv_dim = 2 * 4 * 16 + 4 * 16
    for i in full:
        assert inputs[f"past_key_values.{i}.key"].shape == ["batch_size", 2, "past_sequence_length", 64]
        assert f"present.{i}.value" in outputs
    for i in linear:
        assert inputs[f"past_conv.{i}"].shape == ["batch_size", conv_dim, 3]
        assert inputs[f"past_recurrent.{i}"].shape == ["batch_size", 4, 16, 16]
        assert {f"present_conv.{i}", f"present_recurrent.{i}"} <= set(outputs)
    ops = [(n.domain, n.op_type) for n in onnx.load(str(repo / "onnx" / "decoder_model_merged.onnx"),
                                                    load_external_data=False).graph.node]
    assert ops.count(("com.microsoft", "LinearAttention")) == len(linear)
    assert ops.count(("com.microsoft", "CausalConvWithState")) == len(linear)
    assert ops.count(("com.microsoft", "GroupQueryAttention")) == len(full)
    linear_attention = next(n for n in onnx.load(str(repo / "onnx" / "decoder_model_merged.onnx"),
                                                 load_external_data=False).graph.node if n.op_type == "LinearAttention")
    assert onnx.helper.get_attribute_value(
        next(a for a in linear_attention.attribute if a.name == "update_rule")) == b"gated_delta"


def test_repo_has_the_published_layout(tiny):
    _, repo, _ = tiny
    names = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file() and p.name != ".precisions"}
    for graph in ("embed_tokens", "vision_encoder", "decoder_model_merged"):
        assert {f"onnx/{graph}.onnx", f"onnx/{graph}.onnx_data"} <= names
    assert {"config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
            "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= names


def test_export_model_writes_a_bundle_as_models_install_stores_the_published_files(tiny, tmp_path):
    import dataclasses

    from describe_screen import models
    from describe_screen.export import export_model

    source, _, _ = tiny
    manifest = dataclasses.replace(models.manifest("smolvlm-256m-instruct"), name="tiny-qwen35", family="qwen3.5")
    out = export_model(manifest, tmp_path / "tiny-qwen35", "auto", source=source)  # auto: float32 + 4-bit
    listed = json.loads((out / "manifest.json").read_text())
    assert listed["family"] == "qwen3.5" and listed["precisions"] == ["fp32", "q4"]
    assert {"embed_tokens.onnx", "embed_tokens.onnx_data", "vision_encoder.onnx", "decoder_model_merged.onnx",
            "decoder_model_merged.onnx_data", "decoder_model_merged_q4.onnx", "decoder_model_merged_q4.onnx_data",
            "embed_tokens_q4.onnx", "chat_template.jinja", "tokenizer.json"} <= set(listed["files"])
    assert not list(tmp_path.glob(".*"))  # no working folder left behind


@pytest.fixture(scope="session")
def genai_decoder(tiny, tmp_path_factory):
    """The same checkpoint through onnxruntime-genai's builder (its qwen3_5 text decoder, fp32, CPU, taking
    inputs_embeds): a second, independent writer of the same fused operators."""
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("genai")
    subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(tiny[0]), "-o", str(out),
                    "-p", "fp32", "-e", "cpu", "-c", str(out / "cache"), "--extra_options", "exclude_embeds=true"],
                   check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return out / "model.onnx"


def genai_present(past: str) -> str:
    """onnxruntime-genai's names: past.{i}.conv -> present.{i}.conv, past_key_values.{i}.key -> present.{i}.key."""
    return past.replace("past_key_values.", "present.").replace("past.", "present.")


def test_decoder_logits_equal_onnxruntime_genai_builders_decoder(tiny, genai_decoder):
    """Within 1e-3: the genai graph is itself 3.4e-4 from transformers on this model (ours 1e-4; it normalises
    keys without Qwen's epsilon), so the two agree to the sum of both, with logits up to about 6."""
    import onnxruntime as ort

    _, repo, model = tiny
    theirs = OnnxDecoder(ort.InferenceSession(str(genai_decoder), providers=["CPUExecutionProvider"]),
                         present=genai_present, dims={"kv_cache_dim": model.config.text_config.head_dim})
    assert {"past.0.conv", "past.0.recurrent", "past_key_values.3.key"} <= set(theirs.past)
    ours = OnnxDecoder(session(repo, "decoder_model_merged"))
    embed = model.get_input_embeddings()
    input_ids, positions, delta = image_prompt(model, [1, 4, 6])
    embeds = embed(input_ids).detach().numpy()
    got, want = ours(embeds, positions, keep=0), theirs(embeds, positions)
    np.testing.assert_allclose(got, want, atol=1e-3)
    length, tokens_ours, tokens_theirs = embeds.shape[1], [int(got[0, -1].argmax())], [int(want[0, -1].argmax())]
    for _ in range(15):
        step = np.full((3, 1, 1), length + delta)
        got = ours(embed(torch.tensor([[tokens_ours[-1]]])).detach().numpy(), step)
        want = theirs(embed(torch.tensor([[tokens_theirs[-1]]])).detach().numpy(), step)
        np.testing.assert_allclose(got, want, atol=1e-3)
        tokens_ours.append(int(got[0, -1].argmax()))
        tokens_theirs.append(int(want[0, -1].argmax()))
        length += 1
    assert tokens_ours == tokens_theirs


def test_decoder_runs_a_batch_of_two_prompts_like_torch(tiny):
    _, repo, model = tiny
    embed = model.get_input_embeddings()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [30, 31, 32, 33, 34, 35]])
    positions = np.broadcast_to(np.arange(6), (3, 2, 6)).copy()
    ours, theirs = OnnxDecoder(session(repo, "decoder_model_merged"), batch=2), TorchDecoder(model)
    embeds = embed(ids).detach().numpy()
    np.testing.assert_allclose(ours(embeds, positions, keep=1), theirs(embeds, positions)[:, -1:], atol=1e-4, rtol=1e-4)
    step = embed(torch.tensor([[11], [12]])).detach().numpy()
    np.testing.assert_allclose(ours(step, np.full((3, 2, 1), 6)), theirs(step, np.full((3, 2, 1), 6)), atol=1e-4,
                               rtol=1e-4)


# Shapes the shared tiny model does not have. It has the 2B's proportions (hidden size = the Gated DeltaNet's
# query/key width, 2048 = 16 x 128; vision narrower than text, with other head counts); the 0.8B's hidden size
# is half that width (1024); larger sizes share each query/key head among several value heads and have an
# lm_head of their own.
SHAPES = {"0.8b-proportions": ({"hidden_size": 32, "intermediate_size": 96}, True, (1, 4, 16, 16)),
          "more-value-heads": ({"linear_num_value_heads": 8}, True, (1, 8, 16, 16)),
          "untied-lm-head": ({}, False, (1, 4, 16, 16))}


@pytest.mark.parametrize("shape", SHAPES)
def test_decoder_of_other_sizes_shapes_matches_torch(tmp_path, shape):
    from tiny_qwen import TEXT, VISION, build_qwen

    from describe_screen.export.qwen35 import Checkpoint, write_repo

    changes, tied, recurrent = SHAPES[shape]
    source = build_qwen(tmp_path / "source", {**TEXT, **changes}, VISION, init_std=0.2, tied=tied)
    assert Checkpoint(source).has("lm_head.weight") is not tied
    repo = write_repo(source, tmp_path / "repo", ["fp32"])
    model = torch_model(source)
    embed = model.get_input_embeddings()
    input_ids, positions, delta = image_prompt(model, [1, 4, 6])
    embeds = embed(input_ids).detach().numpy()
    ours, theirs = OnnxDecoder(session(repo, "decoder_model_merged")), TorchDecoder(model)
    assert ours.past["past_recurrent.0"].shape == recurrent
    np.testing.assert_allclose(ours(embeds, positions, keep=0), theirs(embeds, positions), atol=1e-4, rtol=1e-4)
    step = np.full((3, 1, 1), embeds.shape[1] + delta)
    token = embed(torch.tensor([[7]])).detach().numpy()
    np.testing.assert_allclose(ours(token, step), theirs(token, step), atol=1e-4, rtol=1e-4)


def test_a_sharded_bfloat16_checkpoint_exports_its_rounded_weights(tiny, tmp_path):
    """Published checkpoints are bfloat16, the larger ones split over several safetensors files."""
    import copy
    import shutil

    from describe_screen.export.qwen35 import ROOT_FILES, write_repo

    source, _, model = tiny
    half = copy.deepcopy(model).to(torch.bfloat16)
    half.save_pretrained(tmp_path / "source", max_shard_size="400KB")
    for name in ROOT_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, tmp_path / "source" / name)
    assert (tmp_path / "source" / "model.safetensors.index.json").is_file()
    repo = write_repo(tmp_path / "source", tmp_path / "repo", ["fp32"])
    ids = np.arange(model.config.text_config.vocab_size, dtype=np.int64)[None]
    got = session(repo, "embed_tokens").run(None, {"input_ids": ids})[0][0]
    assert np.array_equal(got, half.get_input_embeddings().weight.float().detach().numpy())
    assert not np.array_equal(got, model.get_input_embeddings().weight.detach().numpy())


def test_fp16_graphs_follow_torch_within_float16_rounding(tiny):
    """The _fp16 files are for CUDA; on the CPU onnxruntime runs them by casting around its float32-only kernels,
    which checks their wiring and types, not CUDA's numbers. This tiny random model magnifies rounding (4-bit
    weights move its logits by most of their size), so the bound is loose: 15% of the largest logit, with
    greedy tokens equal for 20 steps; the table is exactly the float16-rounded one."""
    _, repo, model = tiny
    embed = model.get_input_embeddings()
    table = embed.weight.detach().numpy()
    ids = np.arange(len(table), dtype=np.int64)[None]
    assert np.array_equal(session(repo, "embed_tokens", "fp16").run(None, {"input_ids": ids})[0][0],
                          table.astype(np.float16))
    grid = torch.tensor([[1, 8, 8]])
    pixels = torch.randn(64, 1536, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.model.visual(pixels, grid_thw=grid).pooler_output.numpy()
    got = session(repo, "vision_encoder", "fp16").run(None, {"pixel_values": pixels.numpy().astype(np.float16),
                                                             "image_grid_thw": grid.numpy()})[0]
    assert got.dtype == np.float16 and np.abs(got - want).max() <= 2e-3 * np.abs(want).max()
    sess = session(repo, "decoder_model_merged", "fp16")
    types = {i.name: i.type for i in sess.get_inputs()}
    assert types["inputs_embeds"] == "tensor(float)" and types["past_conv.0"] == "tensor(float16)"
    input_ids, positions, delta = image_prompt(model, [1, 4, 6])
    embeds = embed(input_ids).detach().numpy()
    ours, theirs = OnnxDecoder(sess), TorchDecoder(model)
    got, want = ours(embeds, positions, keep=0).astype(np.float32), theirs(embeds, positions)
    assert np.abs(got - want).max() <= 0.15 * np.abs(want).max()
    length, tokens_ours, tokens_theirs = embeds.shape[1], [int(got[0, -1].argmax())], [int(want[0, -1].argmax())]
    for _ in range(20):
        step = np.full((3, 1, 1), length + delta)
        tokens_ours.append(int(ours(embed(torch.tensor([[tokens_ours[-1]]])).detach().numpy(), step).argmax()))
        tokens_theirs.append(int(theirs(embed(torch.tensor([[tokens_theirs[-1]]])).detach().numpy(), step).argmax()))
        length += 1
    assert tokens_ours == tokens_theirs
