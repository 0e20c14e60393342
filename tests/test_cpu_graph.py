"""The Qwen3.5 decoder's CPU copy (vlm/cpu_graph.py): the same words as the int8-product copy it replaces,
its gated norms bit for bit the published graph's values, and the published inputs and outputs, so the
runtime feeds it as it feeds the downloaded file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from tiny_qwen import tiny_qwen_bundle

from describe_screen.vlm import (
    ASK,
    CAPTION_BRIEF,
    CAPTION_FULL,
    Request,
    RuntimeOptions,
    Turn,
    cpu_graph,
    kernels,
    load_model,
)
from describe_screen.vlm import onnx as sessions
from describe_screen.vlm.decoding import Limits, teacher_forced

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
    """The bundle's q4 decoder with only `rewrites` applied, saved in `folder` (its weights read from the
    bundle's file: onnx.load refuses a weights file that a CPU copy has hard-linked)."""
    model = onnx.load(str(bundle / DECODER), load_external_data=False)
    assert all(rewrite(model) for rewrite in rewrites)
    sessions.save_copy(model, bundle / DECODER, folder / "decoder.onnx")
    return str(folder / "decoder.onnx")


def test_vectorised_gated_norms_compute_the_published_values_bit_for_bit(bundle, tmp_path):
    source = run(bundle / DECODER)
    copy = run(rewritten(bundle, tmp_path, cpu_graph.vectorised_gated_norms))
    for mine, theirs in zip(copy, source, strict=True):
        for name, value in theirs.items():
            assert np.array_equal(mine[name], value), name


def with_our_kernel(monkeypatch) -> None:
    """Our products in the copies made from here on, on any processor (the scalar loop where there is no
    AVX-512 VNNI), the library built first as own_kernel() builds it: the sessions then register it."""
    monkeypatch.setattr(cpu_graph, "own_kernel", lambda: kernels.library() is not None)
    assert cpu_graph.own_kernel()


@pytest.mark.parametrize("own", [True, False], ids=["our kernel", "onnxruntime's"])
def test_the_cpu_copy_keeps_the_published_contract_without_the_slow_forms(bundle, tmp_path, monkeypatch, own):
    if own:
        with_our_kernel(monkeypatch)
    else:
        monkeypatch.setattr(cpu_graph, "own_kernel", lambda: False)
    assert cpu_graph.derive(bundle / DECODER, tmp_path / "copy.onnx")
    source = onnx.load(str(bundle / DECODER), load_external_data=False).graph
    copy = onnx.load(str(tmp_path / "copy.onnx"), load_external_data=False).graph
    assert [(v.name, v.type) for v in copy.input] == [(v.name, v.type) for v in source.input]
    assert [v.name for v in copy.output] == [v.name for v in source.output]
    ops = [n.op_type for n in copy.node]
    assert "GatedRMSNorm" not in ops
    products = sum(n.op_type == "MatMulNBits" for n in source.node)
    if own:  # every 4-bit product is ours (the tiny model's widths are all on our kernel's grid)
        assert ops.count("Q4MatMul") == products and "MatMulNBits" not in ops
    else:
        assert [a.i for n in copy.node if n.op_type == "MatMulNBits" for a in n.attribute
                if a.name == "accuracy_level"] == [4] * products


REQUESTS = [Request(task=CAPTION_BRIEF), Request(task=CAPTION_FULL),
            Request(task=ASK, question="What is written?", history=[Turn("What is this?", "A form.")])]


def words(path, precision="q4") -> list[list[int]]:
    model = load_model(path, RuntimeOptions(provider="cpu", precision=precision))
    return [list(model.token_ids(picture(seed), request, lambda: False, FORCED))
            for seed, request in enumerate(REQUESTS)]


def test_the_cpu_copy_says_what_the_int8_product_copy_says(bundle, tmp_path, monkeypatch):
    """The gated norms' rewrite changes no token (onnxruntime's products on both sides)."""
    monkeypatch.setattr(cpu_graph, "own_kernel", lambda: False)
    ours = words(bundle)
    assert (bundle / ".derived").is_dir() and any("int8_decoder" in p.name for p in (bundle / ".derived").iterdir())
    plain = shutil.copytree(bundle, tmp_path / bundle.name, ignore=shutil.ignore_patterns(".derived"))
    monkeypatch.setattr(cpu_graph, "derive", lambda source, target: sessions.int8_products(source, target))
    assert words(plain) == ours
    assert all(len(tokens) == TOKENS for tokens in ours)


def forced_choices(path, tokens: list[list[int]]) -> list[list[int]]:
    """The token the model at `path` picks at each position of each of words()' requests when fed `tokens`."""
    model = load_model(path, RuntimeOptions(provider="cpu", precision="q4"))
    choices = []
    for seed, (request, answer) in enumerate(zip(REQUESTS, tokens, strict=True)):
        state = model.after_image(model.patches(picture(seed), request.task), bytes([seed]) * 16, lambda: False)
        step, _ = model.decoder_step(state)
        choices.append(teacher_forced(step, model.turn_ids(request), answer))
    return choices


def test_our_kernel_picks_the_tokens_onnxruntimes_picks(bundle, tmp_path, monkeypatch):
    """Our 4-bit products (vision and decoder) against onnxruntime's, each fed the other's previous tokens:
    the same choice almost everywhere. They differ only in the order floats are summed, which the int8
    rounding of the next layer's input can turn into a near tie's other side on this random tiny model
    (measured 115 of 120); a wrong layout or scale picks random tokens (about 1 in 400)."""
    monkeypatch.setattr(cpu_graph, "own_kernel", lambda: False)
    theirs = words(bundle)
    with_our_kernel(monkeypatch)
    mine = shutil.copytree(bundle, tmp_path / bundle.name, ignore=shutil.ignore_patterns(".derived"))
    choices = forced_choices(mine, theirs)
    assert any(p.name.endswith(".onnx.data") for p in (mine / ".derived").iterdir())  # it ran our products
    assert [c[0] for c in choices] == [t[0] for t in theirs]
    same = sum(a == b for c, t in zip(choices, theirs, strict=True) for a, b in zip(c, t, strict=True))
    assert same >= 0.9 * TOKENS * len(theirs)


def external(tensor: onnx.TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data} if tensor.data_location == onnx.TensorProto.EXTERNAL else {}


def copy_of(bundle) -> Path:
    [copy] = (bundle / ".derived").glob("decoder_model_merged_q4.int8_decoder.*.onnx")
    return copy


def test_the_cpu_copy_reads_the_published_weights_file_and_holds_none_of_its_own(bundle, monkeypatch):
    monkeypatch.setattr(cpu_graph, "own_kernel", lambda: False)
    words(bundle)
    copy = copy_of(bundle)
    source = {i.name: i for i in onnx.load(str(bundle / DECODER), load_external_data=False).graph.initializer}
    mine = {i.name: i for i in onnx.load(str(copy), load_external_data=False).graph.initializer}
    weights = {name for name, tensor in source.items() if external(tensor)}
    assert weights and weights <= set(mine)
    for name in weights:  # the same bytes of the same file: a hard link beside the copy, one file on disk
        theirs, ours = external(source[name]), external(mine[name])
        assert (ours["offset"], ours["length"]) == (theirs["offset"], theirs["length"]), name
        assert (copy.parent / ours["location"]).samefile(bundle / theirs["location"]), name
    added = {name: tensor for name, tensor in mine.items() if name not in source}
    assert added and all(name.endswith(("axis", "rows", "end", "width", "epsilon")) and len(t.raw_data) <= 16
                         for name, t in added.items())
    base = copy.name.rsplit(".", 2)[0]
    beside = [p for p in copy.parent.glob(f"{base}.*") if p != copy]
    assert beside and all(p.samefile(bundle / p.name.removeprefix(f"{base}.")) for p in beside)
    assert copy.stat().st_size < 2 * (bundle / DECODER).stat().st_size  # the graph and small constants


def test_with_our_kernel_the_copy_holds_only_the_packed_products_of_its_own(bundle, monkeypatch):
    """Our products' weights, packed, in the copy's own file; every other weight still read through the link
    to the published file; the published 4-bit weights no longer read at all."""
    with_our_kernel(monkeypatch)
    words(bundle)
    copy = copy_of(bundle)
    base = copy.name.rsplit(".", 2)[0]
    graph = onnx.load(str(bundle / DECODER), load_external_data=False).graph
    source = {i.name: i for i in graph.initializer}
    mine = {i.name: i for i in onnx.load(str(copy), load_external_data=False).graph.initializer}
    products = {name for n in graph.node if n.op_type == "MatMulNBits" for name in n.input[1:4] if name}
    assert products and not products & set(mine)
    for name in set(source) - products:
        if where := external(source[name]):
            assert (copy.parent / external(mine[name])["location"]).samefile(bundle / where["location"]), name
    packed = {name: external(t) for name, t in mine.items() if name not in source and external(t)}
    assert packed and {name.rsplit(".", 1)[1] for name in packed} == {"w", "s", "z"}
    assert {where["location"] for where in packed.values()} == {f"{base}.onnx.data"}
    own = copy.parent / f"{base}.onnx.data"
    assert own.stat().st_size == max(int(w["offset"]) + int(w["length"]) for w in packed.values())
    assert own.stat().st_size < (bundle / f"{DECODER}_data").stat().st_size


def reinstalled(bundle, folder, change) -> Path:
    """A copy of `bundle` (its CPU copy made) whose decoder weights file was then installed again: replaced
    by a new file holding `change(bytes)`, the manifest giving its checksum, as `models install` leaves it."""
    import hashlib
    import json
    import os

    copy = shutil.copytree(bundle, folder / bundle.name)
    data = copy / f"{DECODER}_data"
    new = data.with_suffix(".new")
    new.write_bytes(change(data.read_bytes()))
    os.replace(new, data)
    manifest = json.loads((copy / "manifest.json").read_text())
    blob = data.read_bytes()
    manifest["files"][data.name] = {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / ".verified.json").unlink(missing_ok=True)
    return copy


def flipped_weights(blob: bytes, graph) -> bytes:
    """`blob` with every 4-bit weight block of the decoder's products changed (other valid 4-bit values)."""
    changed = bytearray(blob)
    weights = {n.input[1] for n in graph.node if n.op_type == "MatMulNBits"}
    for tensor in graph.initializer:
        if tensor.name in weights and (where := external(tensor)):
            start, length = int(where["offset"]), int(where["length"])
            changed[start:start + length] = bytes(b ^ 0x11 for b in changed[start:start + length])
    return bytes(changed)


def test_a_reinstalled_weights_file_is_never_read_through_the_old_copy(bundle, tmp_path):
    before = words(bundle)
    graph = onnx.load(str(bundle / DECODER), load_external_data=False).graph
    changed = reinstalled(bundle, tmp_path / "changed", lambda blob: flipped_weights(blob, graph))
    old = copy_of(changed).name
    after = words(changed)
    assert copy_of(changed).name != old and not list((changed / ".derived").glob(f"{old.rsplit('.', 2)[0]}.*"))
    fresh = shutil.copytree(changed, tmp_path / "fresh" / bundle.name, ignore=shutil.ignore_patterns(".derived"))
    assert after == words(fresh) != before

    same = reinstalled(bundle, tmp_path / "same", lambda blob: blob)  # the same bytes in a new file
    link = copy_of(same).with_name(f"{copy_of(same).name.rsplit('.', 2)[0]}.{DECODER}_data")
    assert not link.samefile(same / f"{DECODER}_data")
    assert words(same) == before
    assert link.samefile(same / f"{DECODER}_data")  # made again at once, from the installed file


def matmul(folder: Path, external_data: bool) -> Path:
    """A one-product graph whose weights are inside it or in a weights file beside it."""
    from onnx import helper, numpy_helper

    weights = numpy_helper.from_array(np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, [1, 64])],
                              [helper.make_tensor_value_info("y", 1, [1, 64])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    folder.mkdir()
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=external_data, location="m.onnx_data",
                    size_threshold=0)
    return folder / "m.onnx"


def product(path: Path) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.ones((1, 64), np.float32)})[0]


def test_a_graph_holding_its_own_weights_gets_a_copy_holding_them_too(tmp_path):
    source = matmul(tmp_path / "inside", external_data=False)
    target = tmp_path / "copy" / "m.cpu.onnx"
    target.parent.mkdir()
    assert sessions.save_copy(onnx.load(str(source), load_external_data=False), source, target) == []
    assert list(target.parent.iterdir()) == [target]
    assert np.array_equal(product(target), product(source))


def test_weights_that_cannot_be_linked_are_copied_beside_the_copy(tmp_path, monkeypatch):
    source = matmul(tmp_path / "beside", external_data=True)
    target = tmp_path / "copy" / "m.cpu.onnx"
    target.parent.mkdir()

    def no_links(*_):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("os.link", no_links)
    [beside] = sessions.save_copy(onnx.load(str(source), load_external_data=False), source, target)
    assert beside.name == "m.cpu.copy.m.onnx_data" and not beside.samefile(source.with_name("m.onnx_data"))
    assert np.array_equal(product(target), product(source))


def test_a_weights_file_not_beside_its_graph_gets_no_copy(tmp_path):
    source = matmul(tmp_path / "beside", external_data=True)
    model = onnx.load(str(source), load_external_data=False)
    next(e for e in model.graph.initializer[0].external_data if e.key == "location").value = "../m.onnx_data"
    with pytest.raises(ValueError, match="not beside it"):
        sessions.save_copy(model, source, tmp_path / "m.cpu.onnx")
    assert not (tmp_path / "m.cpu.onnx").exists()


def test_doctor_says_whose_4_bit_products_the_decoder_runs(bundle, tmp_path, monkeypatch):
    options = RuntimeOptions(provider="cpu", precision="q4")
    assert load_model(bundle, options).decoder_in_use() == (
        "its copy for the processor, with describe-screen's own 4-bit kernel" if cpu_graph.own_kernel() else
        "its copy for the processor, with onnxruntime's 4-bit products, not describe-screen's faster own kernel "
        "(This processor lacks AVX-512 VNNI, which that kernel needs)")
    plain = shutil.copytree(bundle, tmp_path / bundle.name, ignore=shutil.ignore_patterns(".derived"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no C compiler
    assert load_model(plain, options).decoder_in_use() == (
        "its copy for the processor, with onnxruntime's 4-bit products, not describe-screen's faster own kernel "
        "(No C compiler (cc or gcc) is installed, so the fast 4-bit kernel cannot be built)")
    assert load_model(plain, RuntimeOptions(provider="cpu", precision="q4", fused=False)).decoder_in_use() == \
        "its published decoder graph"
