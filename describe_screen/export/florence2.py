"""Export Florence-2 (transformers' Florence2ForConditionalGeneration) to the onnx-community file layout.

Four graphs, with the same file, input and output names as onnx-community/Florence-2-*, so their
downloads and ours run on one runtime:

- vision_encoder.onnx: pixel_values -> image_features (DaViT + projector, 577 tokens at 768x768)
- embed_tokens.onnx: input_ids -> inputs_embeds
- encoder_model.onnx: inputs_embeds, attention_mask -> last_hidden_state (BART encoder over image + prompt)
- decoder_model_merged.onnx: inputs_embeds, encoder_hidden_states, encoder_attention_mask,
  past_key_values.{i}.{decoder,encoder}.{key,value}, use_cache_branch -> logits, present.*

Decision on the merged decoder: only the cross-attention keys/values differ between the first step and
later ones, so the graph is the with-past decoder (self-attention past may be empty, length 0) plus one
`If` on use_cache_branch: false computes the cross-attention keys/values from encoder_hidden_states,
true passes past_key_values.{i}.encoder.* through. Weights are stored once and no step recomputes the
cross-attention projections. Step 0 feeds empty pasts and use_cache_branch=false; later steps feed the
decoder presents of the previous step, the encoder presents of step 0, and true.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.export import common
from describe_screen.vlm.florence2 import DECODER, EMBED, ENCODER, GRAPHS, VISION, Preprocess
from describe_screen.vlm.manifest import copy_support_files, publish, read_json, staging_dir

if TYPE_CHECKING:
    import onnx
    import torch

    from describe_screen.models import ModelManifest

OPSET = 17


def export(manifest: ModelManifest, out_dir: Path, precisions: list[str], source: str | Path | None) -> Path:
    """Export `manifest`'s model (from `source` or its pinned download) into the bundle `out_dir`."""
    import torch
    from transformers import Florence2ForConditionalGeneration

    src = common.resolve_source(manifest, source)
    model = Florence2ForConditionalGeneration.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    staging = staging_dir(out_dir)
    size = Preprocess.read(lambda name, required: read_json(src / name, required), src).height
    paths = export_graphs(model, staging, int(manifest.export.get("opset", OPSET)), size)
    for path in paths:
        common.check_onnx(path)
    copy_support_files(src, staging)
    # The token embedding is a Gather, which int8/fp16 MatMul rewriting would not change: one file serves all.
    common.make_variants(staging, [graph.file for graph in GRAPHS if graph != EMBED], precisions)
    return publish(staging, out_dir, {**manifest.bundle_info(),
                                             "num_layers": model.config.text_config.decoder_layers}, precisions)


def export_graphs(model: torch.nn.Module, out_dir: Path, opset: int = OPSET, image_size: int = 768) -> list[Path]:
    """Write the four fp32 graphs of a Florence2ForConditionalGeneration into `out_dir`.

    The vision graph is traced at `image_size` (the processor's square side), which it then requires.
    """
    import torch

    model = model.eval().float()
    model.set_attn_implementation("eager")
    out_dir.mkdir(parents=True, exist_ok=True)
    text = model.config.text_config
    modules = _modules(model)
    with torch.no_grad(), _channel_attention_without_wide_transposes():
        _export(modules["vision"], opset, (torch.zeros(1, 3, image_size, image_size),), out_dir / VISION.file,
                VISION.inputs, VISION.outputs, {"pixel_values": {0: "batch_size"},
                                                "image_features": {0: "batch_size"}})
        ids = torch.ones(1, 5, dtype=torch.long)
        _export(model.get_input_embeddings(), opset, (ids,), out_dir / EMBED.file, EMBED.inputs, EMBED.outputs,
                {"input_ids": {0: "batch_size", 1: "sequence_length"},
                 "inputs_embeds": {0: "batch_size", 1: "sequence_length"}})
        embeds = torch.randn(1, 7, text.d_model)
        _export(modules["encoder"], opset, (embeds, torch.ones(1, 7, dtype=torch.long)), out_dir / ENCODER.file,
                ENCODER.inputs, ENCODER.outputs,
                {"inputs_embeds": {0: "batch_size", 1: "encoder_sequence_length"},
                 "attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
                 "last_hidden_state": {0: "batch_size", 1: "encoder_sequence_length"}})
        _export_decoder(model, modules["step"], modules["cross"], out_dir / DECODER.file, opset)
    return [out_dir / graph.file for graph in GRAPHS]


@contextmanager
def _channel_attention_without_wide_transposes() -> Iterator[None]:
    """Trace DaViT's channel attention in an equivalent form that onnxruntime runs faster.

    transformers permutes q, k and v to (batch, groups, channels, tokens), moving the token axis (36864
    long at stage 1) innermost: onnxruntime's Transpose does that element by element, and it was a quarter
    of the vision encoder's time. Here they stay (batch, groups, tokens, channels), which moves whole
    channel rows, and the two products take their transposes inside MatMul (q^T k and v W^T).
    """
    import torch
    from transformers.models.florence2 import modeling_florence2 as florence

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.groups, width // self.groups)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, groups, tokens, channels)
        weights = torch.matmul(query.transpose(-1, -2), key) * tokens**-0.5
        weights = weights.softmax(dim=-1)  # (batch, groups, channels, channels)
        out = torch.matmul(value, weights.transpose(-1, -2))  # (batch, groups, tokens, channels)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))

    original = florence.Florence2VisionChannelAttention.forward
    florence.Florence2VisionChannelAttention.forward = forward
    try:
        yield
    finally:
        florence.Florence2VisionChannelAttention.forward = original


def _export(module: torch.nn.Module, opset: int, args: tuple, path: Path, inputs: Sequence[str],
            outputs: Sequence[str], axes: dict[str, dict[int, str]]) -> None:
    import torch

    torch.onnx.export(module, args, str(path), input_names=list(inputs), output_names=list(outputs),
                      dynamic_axes=axes,
                      opset_version=opset, do_constant_folding=True, dynamo=False)


def _modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Thin wrappers giving each exported graph plain tensor inputs and outputs.

    vision: pixel_values -> projected image features; encoder: the BART encoder over merged embeddings;
    step: one decoder step with the cross keys/values given; cross: those keys/values from the encoder output.
    """
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    decoder = model.model.language_model.decoder
    lm_head = model.lm_head
    layers = len(decoder.layers)

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.model.get_image_features(pixel_values).pooler_output

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.model.language_model.encoder

        def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder, self.lm_head = decoder, lm_head

        def forward(self, inputs_embeds: torch.Tensor, encoder_attention_mask: torch.Tensor,
                    *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
            past = [flat[4 * i: 4 * i + 2] for i in range(layers)]
            cross = [flat[4 * i + 2: 4 * i + 4] for i in range(layers)]
            cache = EncoderDecoderCache(DynamicCache(past), DynamicCache(cross))
            key = cross[0][0]
            # Only the shape of encoder_hidden_states is read (for the cross mask): the cache holds the values.
            shape_only = key.transpose(1, 2).reshape(key.shape[0], key.shape[2], -1)
            out = self.decoder(inputs_embeds=inputs_embeds, encoder_hidden_states=shape_only,
                               encoder_attention_mask=encoder_attention_mask, past_key_values=cache, use_cache=True)
            present = out.past_key_values.self_attention_cache
            flat_present = [t for layer in present.layers for t in (layer.keys, layer.values)]
            return (self.lm_head(out.last_hidden_state), *flat_present)

    class Cross(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(layer.encoder_attn for layer in decoder.layers)

        def forward(self, encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
            batch, length, _ = encoder_hidden_states.shape
            out = []
            for attn in self.layers:
                for proj in (attn.k_proj, attn.v_proj):
                    out.append(proj(encoder_hidden_states).view(batch, length, -1, attn.head_dim).transpose(1, 2))
            return tuple(out)

    return {"vision": Vision(), "encoder": Encoder(), "step": Step(), "cross": Cross()}


def _kv_names(layers: int, prefix: str, part: str) -> list[str]:
    return [f"{prefix}.{i}.{part}.{kind}" for i in range(layers) for kind in ("key", "value")]


def _export_decoder(model: torch.nn.Module, step: torch.nn.Module, cross: torch.nn.Module, path: Path,
                    opset: int) -> None:
    """Export the step and cross graphs to temporary files, then merge them into one graph with an If."""
    import onnx
    import torch

    text = model.config.text_config
    layers, heads = text.decoder_layers, text.decoder_attention_heads
    head_dim = text.d_model // heads
    past_len, enc_len = 3, 11
    flat = []
    for _ in range(layers):
        flat += [torch.randn(1, heads, past_len, head_dim) for _ in range(2)]
        flat += [torch.randn(1, heads, enc_len, head_dim) for _ in range(2)]
    kv_in = [n for i in range(layers) for n in (f"past_key_values.{i}.decoder.key",
                                                 f"past_key_values.{i}.decoder.value",
                                                 f"cross.{i}.key", f"cross.{i}.value")]
    present = _kv_names(layers, "present", "decoder")
    axes: dict[str, dict[int, str]] = {
        "inputs_embeds": {0: "batch_size", 1: "decoder_sequence_length"},
        "encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
        "logits": {0: "batch_size", 1: "decoder_sequence_length"},
    }
    for name in kv_in:
        axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length" if "decoder" in name
                      else "encoder_sequence_length_out"}
    for name in present:
        axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length + 1"}
    step_path, cross_path = path.with_name("_step.onnx"), path.with_name("_cross.onnx")
    try:
        _export(step, opset, (torch.randn(1, 2, text.d_model), torch.ones(1, enc_len, dtype=torch.long), *flat),
                step_path, ["inputs_embeds", "encoder_attention_mask", *kv_in], ["logits", *present], axes)
        cross_out = [f"cross.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
        _export(cross, opset, (torch.randn(1, enc_len, text.d_model),), cross_path, ["encoder_hidden_states"],
                cross_out,
                {"encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
                 **{n: {0: "batch_size", 2: "encoder_sequence_length"} for n in cross_out}})
        merged = merge_with_cross_branch(onnx.load(str(step_path)), onnx.load(str(cross_path)), layers)
        onnx.save(merged, str(path))
    finally:
        step_path.unlink(missing_ok=True)
        cross_path.unlink(missing_ok=True)


def merge_with_cross_branch(step: onnx.ModelProto, cross: onnx.ModelProto, layers: int) -> onnx.ModelProto:
    """Make the step graph take past encoder keys/values or encoder_hidden_states, chosen by use_cache_branch.

    `step` reads cross.{i}.key/value as inputs; `cross` computes them from encoder_hidden_states. An If
    node outputs them as present.{i}.encoder.*, which the step's nodes then read: the then-branch passes
    past_key_values.{i}.encoder.* through, the else-branch runs the `cross` graph (its names prefixed so
    they cannot clash with the outer graph). Every node between input and output copies the (encoder
    length x width) tensors on each step, so there is exactly one: the then-branch's Identity.
    """
    from onnx import TensorProto, helper

    graph = step.graph
    cross_names = [f"cross.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    kv_inputs = {i.name: i for i in graph.input if i.name in cross_names}
    past_encoder = _kv_names(layers, "past_key_values", "encoder")
    present_encoder = dict(zip(cross_names, _kv_names(layers, "present", "encoder"), strict=True))

    then_nodes = [helper.make_node("Identity", [src], [f"then/{dst}"])
                  for src, dst in zip(past_encoder, cross_names, strict=True)]
    then_graph = helper.make_graph(then_nodes, "use_past_cross", [],
                                   [_like(kv_inputs[n], f"then/{n}") for n in cross_names])
    else_graph = _prefixed_subgraph(cross.graph, "cross_kv/", keep={"encoder_hidden_states"})

    if_node = helper.make_node("If", ["use_cache_branch"], list(present_encoder.values()), name="cross_kv_if",
                               then_branch=then_graph, else_branch=else_graph)
    for node in graph.node:
        node.input[:] = [present_encoder.get(name, name) for name in node.input]
    nodes = [if_node, *graph.node]

    inputs = [i for i in graph.input if i.name not in kv_inputs]
    # Step 0 feeds empty encoder pasts whose length differs from the presents': the two must not share a
    # symbolic dimension, or onnxruntime plans one buffer for both.
    inputs += [_like(kv_inputs[c], p, {2: "past_encoder_sequence_length"})
               for c, p in zip(cross_names, past_encoder, strict=True)]
    inputs.append(cross.graph.input[0])
    inputs.append(helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1]))
    outputs = list(graph.output) + [_like(kv_inputs[c], p) for c, p in present_encoder.items()]
    merged_graph = helper.make_graph(nodes, "florence2_decoder_merged", _order(inputs, layers),
                                     _order(outputs, layers), list(graph.initializer))
    model = helper.make_model(merged_graph, opset_imports=step.opset_import, producer_name="describe-screen")
    model.ir_version = step.ir_version
    return model


def _like(info: onnx.ValueInfoProto, name: str, dims: dict[int, str] | None = None) -> onnx.ValueInfoProto:
    """A copy of `info` named `name`, with the symbolic dimensions in `dims` renamed."""
    copy = type(info)()
    copy.CopyFrom(info)
    copy.name = name
    for axis, param in (dims or {}).items():
        copy.type.tensor_type.shape.dim[axis].dim_param = param
    return copy


def _order(values: list, layers: int) -> list:
    """optimum's order: the named inputs/outputs first, then per layer decoder key, value, encoder key, value."""
    def rank(info: onnx.ValueInfoProto) -> tuple:
        parts = info.name.split(".")
        if len(parts) == 4 and parts[1].isdigit():
            return (1, int(parts[1]), parts[2] != "decoder", parts[3] != "key")
        return (0 if info.name != "use_cache_branch" else 2, 0, False, False)
    return sorted(values, key=rank)


def _prefixed_subgraph(graph: onnx.GraphProto, prefix: str, keep: set[str]) -> onnx.GraphProto:
    """A copy of `graph` as a subgraph: no inputs (it reads `keep` from the outer scope), every name prefixed."""
    from onnx import helper

    def rename(name: str) -> str:
        return name if not name or name in keep else prefix + name

    nodes = []
    for node in graph.node:
        copy = type(node)()
        copy.CopyFrom(node)
        copy.name = rename(node.name)
        copy.input[:] = [rename(n) for n in node.input]
        copy.output[:] = [rename(n) for n in node.output]
        nodes.append(copy)
    initializers = []
    for tensor in graph.initializer:
        copy = type(tensor)()
        copy.CopyFrom(tensor)
        copy.name = rename(tensor.name)
        initializers.append(copy)
    outputs = [_like(o, rename(o.name)) for o in graph.output]
    return helper.make_graph(nodes, "compute_cross", [], outputs, initializers)
