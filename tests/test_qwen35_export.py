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

GRIDS = [[[1, 4, 4]], [[1, 2, 6]], [[1, 6, 2]], [[1, 8, 4]], [[1, 4, 4], [1, 2, 4]]]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    source, repo = tiny_qwen_repo(tmp_path_factory.getbasetemp())
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


class OnnxDecoder:
    """The least a runtime does: empty caches from the session's own metadata, present fed back as past."""

    def __init__(self, sess, batch: int = 1) -> None:
        self.sess = sess
        self.past = {}
        for info in sess.get_inputs():
            if info.name.startswith("past"):
                shape = [batch if d == "batch_size" else (0 if isinstance(d, str) else d) for d in info.shape]
                self.past[info.name] = np.zeros(shape, np.float32)
        self.length = 0

    def __call__(self, embeds: np.ndarray, positions: np.ndarray, keep: int = 1) -> np.ndarray:
        batch, seq, _ = embeds.shape
        feed = {"inputs_embeds": embeds.astype(np.float32), "position_ids": positions.astype(np.int64),
                "attention_mask": np.ones((batch, self.length + seq), np.int64),
                "num_logits_to_keep": np.array(keep, np.int64), **self.past}
        names = [o.name for o in self.sess.get_outputs()]
        out = dict(zip(names, self.sess.run(None, feed), strict=True))
        for name in self.past:
            self.past[name] = out[name.replace("past_key_values.", "present.").replace("past_", "present_")]
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
    out = export_model(manifest, tmp_path / "tiny-qwen35", "fp32", source=source)
    listed = json.loads((out / "manifest.json").read_text())
    assert listed["family"] == "qwen3.5" and listed["precisions"] == ["fp32"]
    assert {"embed_tokens.onnx", "embed_tokens.onnx_data", "vision_encoder.onnx", "decoder_model_merged.onnx",
            "decoder_model_merged.onnx_data", "chat_template.jinja", "tokenizer.json"} <= set(listed["files"])
    assert not list(tmp_path.glob(".*"))  # no working folder left behind
