"""The fused decoder (vlm/fused.py): the same tokens as the exported graph it is derived from, whichever
exporter and quantiser made that graph, its cache buffers growing in place, and the derived file made once,
kept beside the bundle, checked by its checksum, and never trusted blindly; where it cannot be made, the
user is told."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from tiny import export_decoder_dynamo, published_bundle, tiny_smolvlm_bundle

from describe_screen.vlm import ASK, CAPTION_BRIEF, CAPTION_FULL, Request, RuntimeOptions, Turn, fused, load_model
from describe_screen.vlm.decoding import Limits
from describe_screen.vlm.manifest import write_manifest

TOKENS = 24
FORCED = Limits(max_new_tokens=TOKENS, repeat_span=0)  # exactly TOKENS, no EOS or loop stop
REQUESTS = [Request(task=CAPTION_BRIEF), Request(task=CAPTION_FULL),
            Request(task=ASK, question="What is written?", history=[Turn("What is this?", "A form.")])]


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """fp32, int8 and q4 (the published 4-bit recipe) of the tiny SmolVLM: every projection form."""
    _, exported = tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())
    return published_bundle(exported, tmp_path_factory.mktemp("fused") / "tiny-smolvlm",
                            precisions=("fp32", "int8", "q4"))


def rewrite_manifest(path: Path) -> None:
    """manifest.json again after a test changed the bundle's files."""
    manifest = json.loads((path / "manifest.json").read_text())
    files = [p.name for p in path.iterdir() if p.is_file() and p.name not in ("manifest.json", ".verified.json")]
    write_manifest(path, {k: v for k, v in manifest.items() if k not in ("files", "format")}, files)


@pytest.fixture(scope="module")
def dynamo_bundle(bundle, tmp_path_factory) -> Path:
    """The same model with its decoder from a second route: torch's dynamo exporter (other operators,
    Reciprocal for the norms' square roots, weights named "val_71"), quantised with onnxruntime's own
    quantisers as the published files are: quantize_dynamic (uint8 weights with zero points, one scale
    per tensor, like the published _uint8/_quantized files) and MatMulNBitsQuantizer (q4)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from describe_screen.export.common import quantize_q4

    source, _ = tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())
    copy = Path(shutil.copytree(bundle, tmp_path_factory.mktemp("dynamo") / "tiny-smolvlm"))
    shutil.rmtree(copy / ".derived", ignore_errors=True)
    decoder = export_decoder_dynamo(source, copy / "decoder_model_merged.onnx")
    assert not any("proj" in n.name or "layers." in n.name for n in onnx.load(str(decoder)).graph.node)
    quantize_dynamic(str(decoder), str(copy / "decoder_model_merged_int8.onnx"), weight_type=QuantType.QUInt8,
                     per_channel=False, op_types_to_quantize=["MatMul"])
    quantize_q4(decoder, copy / "decoder_model_merged_q4.onnx")
    rewrite_manifest(copy)
    return copy


def tokens(path: Path, precision: str, use_fused: bool, image: Image.Image, request: Request) -> list[int]:
    model = load_model(path, RuntimeOptions(provider="cpu", precision=precision, fused=use_fused))
    assert (model.fused_decoder() is not None) == use_fused
    return list(model.token_ids(image, request, lambda: False, FORCED))


@pytest.mark.parametrize("route", ["bundle", "dynamo_bundle"])
@pytest.mark.parametrize("precision", ["fp32", "int8", "q4"])
def test_fused_decoder_says_what_the_exported_graph_says(route, precision, request):
    bundle = request.getfixturevalue(route)
    same = total = 0
    for seed, request in enumerate(REQUESTS):
        image = picture(seed)
        source = tokens(bundle, precision, False, image, request)
        model = load_model(bundle, RuntimeOptions(provider="cpu", precision=precision))
        assert model.fused_decoder() is not None, model.fused_failure()
        choices = model.forced_choices(image, request, source)
        same += sum(a == b for a, b in zip(source, choices, strict=True))
        total += len(source)
        if precision == "fp32":  # float weights: the same sums in another order, so the same tokens
            assert list(model.token_ids(image, request, lambda: False, FORCED)) == source
    print(f"{route} {precision}: fused decoder picks the source graph's token {same}/{total}")
    # fp32 and int8 compute the same products; q4's copies multiply in int8 instead of float (vision
    # encoder and decoder), which moves the tiny random model's 4-bit logits a little: 65/72 here
    assert same / total >= {"fp32": 1.0, "int8": 0.95, "q4": 0.8}[precision]


def test_fused_graph_is_a_few_nodes_per_layer_with_attention_and_cache_in_one_operator(bundle):
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision="int8"))
    runner = model.fused_decoder()
    graph = onnx.load(str(bundle / ".derived" / runner.label)).graph
    source = onnx.load(str(bundle / "decoder_model_merged_int8.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("GroupQueryAttention") == model.layers == 2
    assert ops.count("DynamicQuantizeMatMul") == 4 * model.layers + 1  # qkv, o, gate+up, down; lm_head
    assert len(ops) <= 12 * model.layers + 4 < len(source.node) / 10
    # past and present are the same buffer: present.* leave the session with the past's capacity
    assert runner.input_shapes["past_key_values.0.key"][2] == "capacity"
    vocab = model.tokenizer.get_vocab_size()
    assert runner.output_names[0] == "logits" and runner.session.get_outputs()[0].shape == [1, 1, vocab]


def test_q4_vision_encoder_multiplies_in_int8_on_the_cpu(bundle):
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision="q4"))
    vision = model.vision()
    assert vision.label.startswith("vision_encoder_q4.int8_products.")
    levels = [next(a.i for a in n.attribute if a.name == "accuracy_level")
              for n in onnx.load(str(bundle / ".derived" / vision.label)).graph.node if n.op_type == "MatMulNBits"]
    assert levels and set(levels) == {4}
    assert load_model(bundle, RuntimeOptions(provider="cpu", precision="int8")).vision().label == \
        "vision_encoder_int8.onnx"  # nothing to change in an int8 file


def test_cache_buffers_grow_in_place_without_changing_the_answer(bundle, monkeypatch):
    from describe_screen.vlm.decoding import greedy

    image, request = picture(7), REQUESTS[2]
    expected = tokens(bundle, "fp32", False, image, request)
    capacities = []
    original = fused.Cache.ensure

    def ensure(self, length: int) -> None:
        original(self, length)
        capacities.append(self.capacity)

    monkeypatch.setattr(fused.Cache, "ensure", ensure)
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision="fp32"))
    tiles = model.tiles(image)
    ids, features = model.prompt_ids(request, tiles), model.encode_image(tiles)
    assert list(model.token_ids(image, request, lambda: False, FORCED)) == expected
    assert set(capacities) == {-(-(len(ids) + TOKENS) // fused.CHUNK) * fused.CHUNK}  # sized once, up front
    capacities.clear()
    monkeypatch.setattr(fused, "CHUNK", 8)  # no size given: it grows by 8 positions at a time
    assert list(greedy(model.decoder_step(features), ids, FORCED)) == expected
    grown = sorted(set(capacities))
    assert len(grown) >= 3 and all(c % 8 == 0 for c in grown) and grown[-1] >= len(ids) + TOKENS - 1


def test_long_prompt_goes_in_slices_with_the_same_answer(bundle, monkeypatch):
    from describe_screen.vlm.onnx import BoundRunner

    image, request = picture(5), REQUESTS[2]
    expected = tokens(bundle, "fp32", False, image, request)
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision="fp32"))
    prompt = len(model.prompt_ids(request, model.tiles(image)))
    runs = []
    original = BoundRunner.execute

    def execute(self, binding, *args):
        runs.append(self.label)
        return original(self, binding, *args)

    monkeypatch.setattr(fused, "PREFILL", 16)
    monkeypatch.setattr(BoundRunner, "execute", execute)
    assert tokens(bundle, "fp32", True, image, request) == expected
    fused_runs = [label for label in runs if ".decoder_fused." in label]
    assert prompt > 32 and len(fused_runs) == -(-prompt // 16) + TOKENS - 1


def test_derived_file_is_made_once_and_again_for_a_new_source(bundle, tmp_path):
    copy = Path(shutil.copytree(bundle, tmp_path / "tiny-smolvlm"))
    shutil.rmtree(copy / ".derived", ignore_errors=True)
    image, request = picture(1), REQUESTS[0]
    first = tokens(copy, "int8", True, image, request)
    [made] = (copy / ".derived").iterdir()
    stamp = made.stat().st_mtime_ns
    assert tokens(copy, "int8", True, image, request) == first
    assert made.stat().st_mtime_ns == stamp  # reused, not rebuilt
    # a new download of the decoder (another checksum) gets its own fused copy; the stale one goes
    shutil.copy(copy / "decoder_model_merged.onnx", copy / "decoder_model_merged_int8.onnx")
    manifest = json.loads((copy / "manifest.json").read_text())
    write_manifest(copy, {k: v for k, v in manifest.items() if k not in ("files", "format")}, manifest["files"])
    assert tokens(copy, "int8", True, image, request) == tokens(copy, "int8", False, image, request) != first
    [remade] = (copy / ".derived").iterdir()
    assert remade.name != made.name and not made.exists()


def test_a_new_recipe_makes_the_copy_again(bundle, tmp_path, monkeypatch):
    copy = Path(shutil.copytree(bundle, tmp_path / "tiny-smolvlm"))
    image, request = picture(6), REQUESTS[1]
    load_model(copy, RuntimeOptions(provider="cpu", precision="int8")).fused_decoder()
    [old] = copy.glob(".derived/decoder_model_merged_int8.*")
    monkeypatch.setattr(fused, "RECIPE", fused.RECIPE + 1)
    assert tokens(copy, "int8", True, image, request) == tokens(copy, "int8", False, image, request)
    [new] = copy.glob(".derived/decoder_model_merged_int8.*")
    assert new.name != old.name and not old.exists()


def test_unwritable_bundle_keeps_its_fused_copy_in_the_cache_folder(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    copy = Path(shutil.copytree(bundle, tmp_path / "tiny-smolvlm"))
    shutil.rmtree(copy / ".derived", ignore_errors=True)
    (copy / ".derived").write_text("not a folder")  # mkdir fails here even for root, as on a read-only disk
    image, request = picture(2), REQUESTS[1]
    assert tokens(copy, "fp32", True, image, request) == tokens(copy, "fp32", False, image, request)
    [made] = (tmp_path / "cache" / "describe-screen" / "derived" / "tiny-smolvlm").glob("*.onnx")
    assert made.name.startswith("decoder_model_merged.decoder_fused.")


def test_damaged_fused_copy_falls_back_to_the_source_graph_and_is_made_again(bundle, tmp_path):
    copy = Path(shutil.copytree(bundle, tmp_path / "tiny-smolvlm"))
    image, request = picture(3), REQUESTS[0]
    expected = tokens(copy, "fp32", False, image, request)
    load_model(copy, RuntimeOptions(provider="cpu", precision="fp32")).fused_decoder()
    [made] = (copy / ".derived").glob("decoder_model_merged.decoder_fused.*")
    made.write_bytes(made.read_bytes()[:1000])  # an interrupted copy
    model = load_model(copy, RuntimeOptions(provider="cpu", precision="fp32"))
    assert model.fused_decoder() is None and not made.exists()
    assert list(model.token_ids(image, request, lambda: False, FORCED)) == expected
    assert tokens(copy, "fp32", True, image, request) == expected and made.exists()


def test_a_text_model_that_is_not_a_plain_llama_runs_its_own_graph(bundle, tmp_path):
    copy = Path(shutil.copytree(bundle, tmp_path / "tiny-smolvlm"))
    shutil.rmtree(copy / ".derived", ignore_errors=True)
    config = json.loads((copy / "config.json").read_text())
    assert fused.text_config(config) is not None
    config["text_config"]["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    assert fused.text_config(config) is None
    (copy / "config.json").write_text(json.dumps(config))
    manifest = json.loads((copy / "manifest.json").read_text())
    write_manifest(copy, {k: v for k, v in manifest.items() if k not in ("files", "format")}, manifest["files"])
    model = load_model(copy, RuntimeOptions(provider="cpu", precision="int8"))
    assert model.fused_decoder() is None and not list(copy.glob(".derived/*.onnx"))
    assert model.fused_failure() == "its rotary embedding is scaled (linear)"
    assert len(list(model.token_ids(picture(4), REQUESTS[0], lambda: False, FORCED))) == TOKENS


def test_every_answer_gives_its_memory_back_even_when_stopped(bundle, monkeypatch):
    from describe_screen.vlm import onnx as runtime

    trims = []
    monkeypatch.setattr(runtime, "trim_heap", lambda: trims.append(True))
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision="int8"))
    assert len(list(model.token_ids(picture(8), REQUESTS[0], lambda: False, FORCED))) == TOKENS
    assert trims == [True]
    answer = model.token_ids(picture(8), REQUESTS[0], lambda: False, FORCED)
    next(answer)
    answer.close()  # the user pressed stop after the first word
    assert trims == [True, True]


def pack_first_attention(path: Path) -> None:
    """Rewrite a float decoder so its first layer's q, k and v are one MatMul and a Split, as some graph
    optimisers write them: the same numbers in a structure the fused decoder does not read."""
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    by_input: dict[str, list] = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            by_input.setdefault(node.input[0], []).append(node)
    trio = next(nodes for nodes in by_input.values() if len(nodes) == 3)
    arrays = [numpy_helper.to_array(weights[n.input[1]]) for n in trio]
    graph.initializer.extend([numpy_helper.from_array(np.concatenate(arrays, axis=1), "packed_qkv"),
                              numpy_helper.from_array(np.array([a.shape[1] for a in arrays]), "packed_qkv_sizes")])
    at = list(graph.node).index(trio[0])
    for node in trio:
        graph.node.remove(node)
    graph.node.insert(at, helper.make_node("Split", ["packed_qkv_out", "packed_qkv_sizes"],
                                           [n.output[0] for n in trio], axis=-1))
    graph.node.insert(at, helper.make_node("MatMul", [trio[0].input[0], "packed_qkv"], ["packed_qkv_out"]))
    onnx.save(model, str(path))


UNREAD = "layer 0's input norm with its q, k and v projections was not found"


@pytest.fixture
def unreadable(bundle, tmp_path) -> Path:
    """The tiny bundle with an fp32 decoder whose first q, k and v projections are packed into one."""
    copy = Path(shutil.copytree(bundle, tmp_path / "tiny-smolvlm"))
    shutil.rmtree(copy / ".derived", ignore_errors=True)
    pack_first_attention(copy / "decoder_model_merged.onnx")
    rewrite_manifest(copy)
    return copy


def test_a_decoder_the_fused_path_cannot_read_runs_as_it_is_and_says_why(bundle, unreadable):
    image, request = picture(9), REQUESTS[0]
    expected = tokens(bundle, "fp32", False, image, request)
    model = load_model(unreadable, RuntimeOptions(provider="cpu", precision="fp32"))
    assert model.fused_decoder() is None and not list(unreadable.glob(".derived/*.onnx"))
    assert model.fused_failure() == UNREAD
    assert model.decoder_in_use() == ("its original decoder graph, because its decoder could not be rewritten "
                                      f"for speed: {UNREAD}")
    assert list(model.token_ids(image, request, lambda: False, FORCED)) == expected  # the same answer, slower
    # where no fused decoder is meant to run, nothing failed and nothing is said to have failed
    unfused = load_model(unreadable, RuntimeOptions(provider="cpu", precision="fp32", fused=False))
    assert unfused.fused_failure() == ""
    assert unfused.decoder_in_use() == "its original decoder graph, because the settings turn the fast decoder off"


def test_a_decoder_that_cannot_be_rewritten_is_read_once_not_at_every_load(unreadable, monkeypatch):
    reads = []
    original = fused.read_weights
    monkeypatch.setattr(fused, "read_weights", lambda *args: reads.append(1) or original(*args))
    for _ in range(2):
        model = load_model(unreadable, RuntimeOptions(provider="cpu", precision="fp32"))
        assert model.fused_decoder() is None and model.fused_failure() == UNREAD
    assert reads == [1]
    # a new download of the decoder is read again
    pack_first_attention(unreadable / "decoder_model_merged.onnx")
    rewrite_manifest(unreadable)
    model = load_model(unreadable, RuntimeOptions(provider="cpu", precision="fp32"))
    assert model.fused_decoder() is None and reads == [1, 1]
    assert len(list(unreadable.glob(".derived/*.none"))) == 1  # the old source's note is gone


def test_install_and_doctor_say_which_decoder_runs(unreadable, tmp_path):
    import os
    import subprocess
    import sys

    from describe_screen.commands import doctor
    from describe_screen.config import Config

    (tmp_path / "config.toml").write_text('[models]\nprovider = "cpu"\nprecision = "fp32"\n')
    env = dict(os.environ, DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"),
               DESCRIBE_SCREEN_CONFIG=str(tmp_path / "config.toml"), DESCRIBE_SCREEN_DATA=str(tmp_path / "data"))
    result = subprocess.run([sys.executable, "-m", "describe_screen", "models", "import", str(unreadable),
                             "smolvlm-256m-instruct"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    said = result.stdout.splitlines()
    assert said[-2:] == [f"This model's decoder could not be rewritten for speed: {UNREAD}. It will run, more slowly.",
                         "It is ready."]
    config = Config()
    config.models.dir, config.models.provider = str(tmp_path / "data" / "models"), "cpu"
    config.models.precision = "fp32"
    check = doctor.check_models(config)
    assert check.says.endswith(" smolvlm-256m-instruct runs its original decoder graph, because its decoder could "
                               f"not be rewritten for speed: {UNREAD}.")
    config.models.precision = "int8"  # the int8 decoder was not rewritten by hand: it reads, and runs fast
    assert doctor.check_models(config).says.endswith(
        " smolvlm-256m-instruct runs the fast decoder (its decoder graph rebuilt from fused operators).")


def test_a_fused_copy_changed_after_it_was_made_is_caught_by_its_checksum_and_made_again(bundle, tmp_path):
    from onnx import numpy_helper

    copy = Path(shutil.copytree(bundle, tmp_path / "tiny-smolvlm"))
    shutil.rmtree(copy / ".derived", ignore_errors=True)
    image, request = picture(10), REQUESTS[1]
    expected = tokens(copy, "fp32", False, image, request)
    load_model(copy, RuntimeOptions(provider="cpu", precision="fp32")).fused_decoder()
    [made] = (copy / ".derived").glob("decoder_model_merged.decoder_fused.*")
    graph = onnx.load(str(made))
    head = next(t for t in graph.graph.initializer if t.name == "lm_head.0")
    head.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(head), head.name))  # same size, other answers
    onnx.save(graph, str(made))
    model = load_model(copy, RuntimeOptions(provider="cpu", precision="fp32"))
    assert model.fused_decoder() is None and not made.exists()  # never run: it would answer differently
    assert "was damaged (its checksum did not match)" in model.fused_failure()
    assert list(model.token_ids(image, request, lambda: False, FORCED)) == expected
    assert tokens(copy, "fp32", True, image, request) == expected and made.exists()


def test_weights_are_found_in_every_published_weight_sets_operators(bundle, tmp_path):
    """fp16 (float16 MatMuls behind a Cast of the input) and q4f16 (MatMulNBits with float16 scales) are
    read too, though only float32-in graphs are rebuilt: the weights are the fp32 graph's."""
    from describe_screen.export.common import convert_fp16, quantize_q4

    shape = fused.text_config(json.loads((bundle / "config.json").read_text()))
    fp16, q4f16 = tmp_path / "fp16.onnx", tmp_path / "q4f16.onnx"
    convert_fp16(bundle / "decoder_model_merged.onnx", fp16, ["inputs_embeds"])
    quantize_q4(fp16, q4f16)
    full = fused.read_weights(onnx.load(str(bundle / "decoder_model_merged.onnx")), shape)
    half = fused.read_weights(onnx.load(str(fp16)), shape)
    for key, linear in full.linears.items():
        assert half.linears[key].kind == "float"
        np.testing.assert_allclose(half.linears[key].arrays[0], linear.arrays[0], rtol=1e-3, atol=1e-4)
    for key, norm in full.norms.items():
        np.testing.assert_allclose(half.norms[key], norm, rtol=1e-3)
    blocks = fused.read_weights(onnx.load(str(q4f16)), shape).linears
    q4 = fused.read_weights(onnx.load(str(bundle / "decoder_model_merged_q4.onnx")), shape).linears
    assert {k: (v.kind, v.columns) for k, v in blocks.items()} == {k: ("nbits", v.columns) for k, v in q4.items()}


@pytest.mark.parametrize("precision", ["fp32", "int8", "q4"])
def test_weights_are_found_in_onnxruntimes_own_fused_form_of_the_graph(bundle, tmp_path, precision):
    """A graph saved after onnxruntime's extended optimisation (SimplifiedLayerNormalization, FusedMatMul for
    the attention scores, QuickGelu, and for int8 MatMulIntegerToFloat and DynamicQuantizeMatMul) gives the
    fused decoder the same weights as the graph it was optimised from."""
    import onnxruntime as ort

    from describe_screen.vlm.bundle import variant_name

    source = bundle / variant_name("decoder_model_merged.onnx", precision)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    optimised = onnx.load(str(tmp_path / "optimised.onnx"))
    ops = {node.op_type for node in optimised.graph.node}
    assert {"SimplifiedLayerNormalization", "FusedMatMul", "QuickGelu"} <= ops and "Pow" not in ops
    assert precision != "int8" or {"MatMulIntegerToFloat", "DynamicQuantizeMatMul"} <= ops
    shape = fused.text_config(json.loads((bundle / "config.json").read_text()))
    original, rewritten = fused.read_weights(onnx.load(str(source)), shape), fused.read_weights(optimised, shape)
    assert rewritten.linears.keys() == original.linears.keys()
    for key, linear in original.linears.items():
        assert rewritten.linears[key].kind == linear.kind and rewritten.linears[key].attrs == linear.attrs
        for mine, theirs in zip(rewritten.linears[key].arrays, linear.arrays, strict=True):
            np.testing.assert_array_equal(np.broadcast_to(mine, theirs.shape), theirs)
    for key, norm in original.norms.items():
        np.testing.assert_array_equal(rewritten.norms[key], norm)


def test_weights_are_found_when_attention_is_exported_as_sdpa(bundle, tmp_path_factory, tmp_path):
    """optimum's exports use PyTorch's scaled_dot_product_attention, which the TorchScript exporter spells
    with scaled factors and a NaN guard (Where) between the softmax and the weighted sum: q, k and v are
    still told apart (k and v have the same shape here, so a swap would show)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from describe_screen.export.smolvlm import export_decoder

    source, _ = tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32, attn_implementation="sdpa")
    with torch.no_grad():
        export_decoder(model.eval(), tmp_path / "sdpa.onnx", 17)
    graph = onnx.load(str(tmp_path / "sdpa.onnx"))
    assert "Where" in {node.op_type for node in graph.graph.node if "self_attn" in node.name}
    shape = fused.text_config(json.loads((bundle / "config.json").read_text()))
    eager, sdpa = fused.read_weights(onnx.load(str(bundle / "decoder_model_merged.onnx")), shape), \
        fused.read_weights(graph, shape)
    for key, linear in eager.linears.items():
        np.testing.assert_array_equal(sdpa.linears[key].arrays[0], linear.arrays[0])
