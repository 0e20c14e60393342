"""The Qwen3.5 decoder's CPU copy (vlm/cpu_graph.py): the same words as the int8-product copy it replaces,
its gated norms bit for bit the published graph's values, and the published inputs and outputs, so the
runtime feeds it as it feeds the downloaded file."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from PIL import Image
from tiny_qwen import tiny_qwen_bundle

from describe_screen.vlm import ASK, CAPTION_BRIEF, CAPTION_FULL, Request, RuntimeOptions, Turn, cpu_graph, load_model
from describe_screen.vlm import onnx as sessions
from describe_screen.vlm.decoding import Limits

TOKENS = 24
FORCED = Limits(max_new_tokens=TOKENS, repeat_span=0)  # exactly TOKENS, no EOS or loop stop
DECODER = "decoder_model_merged_q4.onnx"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_qwen_bundle(tmp_path_factory.getbasetemp(), "q4")


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (120, 200, 3), dtype=np.uint8))


def run(path, prompt: int = 9, steps: int = 3) -> list[dict[str, np.ndarray]]:
    """Every output of graph `path` for a prompt of random embeddings, then `steps` single positions fed
    back with its own cache: what the runtime's loop does."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    hidden = inputs["inputs_embeds"].shape[-1]
    cache = {name: np.zeros([d if isinstance(d, int) else (1 if axis == 0 else 0) for axis, d in enumerate(i.shape)],
                            np.float32) for name, i in inputs.items() if name.startswith("past")}
    rng = np.random.default_rng(0)
    results, past = [], 0
    for length in [prompt] + [1] * steps:
        feed = {"inputs_embeds": rng.standard_normal((1, length, hidden)).astype(np.float32),
                "attention_mask": np.ones((1, past + length), np.int64),
                "position_ids": np.broadcast_to(np.arange(past, past + length), (3, 1, length)).astype(np.int64),
                "num_logits_to_keep": np.array(1, np.int64), **cache}
        out = dict(zip(names, session.run(names, feed), strict=True))
        cache = {name: out[name.replace("past_key_values.", "present.").replace("past_", "present_")]
                 for name in cache}
        results.append(out)
        past += length
    return results


def rewritten(bundle, folder, *rewrites) -> str:
    """The bundle's q4 decoder with only `rewrites` applied, saved in `folder`."""
    model = onnx.load(str(bundle / DECODER))
    assert all(rewrite(model) for rewrite in rewrites)
    onnx.save_model(model, str(folder / "decoder.onnx"))
    return str(folder / "decoder.onnx")


def test_vectorised_gated_norms_compute_the_published_values_bit_for_bit(bundle, tmp_path):
    source = run(bundle / DECODER)
    copy = run(rewritten(bundle, tmp_path, cpu_graph.vectorised_gated_norms))
    for mine, theirs in zip(copy, source, strict=True):
        for name, value in theirs.items():
            assert np.array_equal(mine[name], value), name


def test_the_cpu_copy_keeps_the_published_contract_without_the_slow_forms(bundle, tmp_path):
    assert cpu_graph.derive(bundle / DECODER, tmp_path / "copy.onnx")
    source = onnx.load(str(bundle / DECODER), load_external_data=False).graph
    copy = onnx.load(str(tmp_path / "copy.onnx"), load_external_data=False).graph
    assert [(v.name, v.type) for v in copy.input] == [(v.name, v.type) for v in source.input]
    assert [v.name for v in copy.output] == [v.name for v in source.output]
    ops = [n.op_type for n in copy.node]
    assert "GatedRMSNorm" not in ops
    assert {a.i for n in copy.node if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "accuracy_level"} \
        == {4}


def words(path, precision="q4") -> list[list[int]]:
    model = load_model(path, RuntimeOptions(provider="cpu", precision=precision))
    requests = [Request(task=CAPTION_BRIEF), Request(task=CAPTION_FULL),
                Request(task=ASK, question="What is written?", history=[Turn("What is this?", "A form.")])]
    return [list(model.token_ids(picture(seed), request, lambda: False, FORCED))
            for seed, request in enumerate(requests)]


def test_the_cpu_copy_says_what_the_int8_product_copy_says(bundle, tmp_path, monkeypatch):
    ours = words(bundle)
    assert (bundle / ".derived").is_dir() and any("int8_decoder" in p.name for p in (bundle / ".derived").iterdir())
    plain = shutil.copytree(bundle, tmp_path / bundle.name, ignore=shutil.ignore_patterns(".derived"))
    monkeypatch.setattr(cpu_graph, "derive", lambda source, target: sessions.int8_products(source, target))
    assert words(plain) == ours
    assert all(len(tokens) == TOKENS for tokens in ours)
