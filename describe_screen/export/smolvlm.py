"""Export SmolVLM (and Idefics3, the same architecture) to three ONNX graphs named as onnx-community does.

- vision_encoder.onnx: pixel_values (batch, images, 3, H, W) float32, pixel_attention_mask (batch, images,
  H, W) bool -> image_features (batch x images, image_seq_len, text_hidden): SigLIP tower + pixel-shuffle
  connector.
- embed_tokens.onnx: input_ids (batch, seq) int64 -> inputs_embeds (batch, seq, hidden).
- decoder_model_merged.onnx: inputs_embeds, attention_mask (batch, past+seq) int64, position_ids,
  past_key_values.N.key/value (batch, kv_heads, past, head_dim) -> logits, present.N.key/value.
  One graph serves the prefill (empty past) and every decoding step. Our logits cover only the last
  position: the runtime needs nothing else, and a full (seq x vocab) product would dominate the prefill.

The TorchScript exporter (dynamo=False) traces thin wrappers with eager attention, whose explicit mask
keeps the graph correct for any (new tokens, past) shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.export import common
from describe_screen.vlm import bundle
from describe_screen.vlm.manifest import copy_support_files, publish, staging_dir
from describe_screen.vlm.smolvlm import DECODER, EMBED, VISION, cache_names

if TYPE_CHECKING:
    from describe_screen.models import ModelManifest

OPSET = 17


def export(manifest: ModelManifest, out_dir: Path, precisions: list[str], source: str | Path | None) -> Path:
    """Export `manifest`'s model (from `source` or its pinned download) into the bundle `out_dir`."""
    import torch
    from transformers import AutoModelForImageTextToText

    src = common.resolve_source(manifest, source)
    model = AutoModelForImageTextToText.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    staging = staging_dir(out_dir)
    opset = int(manifest.export.get("opset", OPSET))
    with torch.no_grad():
        export_vision(model, staging / VISION.file, opset)
        export_embed(model, staging / EMBED.file, opset)
        export_decoder(model, staging / DECODER.file, opset)
    for graph in (VISION, EMBED, DECODER):
        common.check_onnx(staging / graph.file)
    copy_support_files(src, staging)
    common.make_variants(staging, (VISION.file, DECODER.file), precisions, {DECODER.file: ["inputs_embeds"]})
    # The token embedding is a lookup table, which MatMul rewriting leaves alone: the fp32 file serves the
    # float weight sets, and the integer ones get the table in int8 as the published int8 files have it
    # (114 -> 28 MB for SmolVLM-256M, the largest saving of memory in a bundle).
    for precision in {"int8", "q4"} & set(precisions):
        common.quantize_int8(staging / EMBED.file, staging / bundle.variant_name(EMBED.file, precision), ("Gather",))
    return publish(staging, out_dir, manifest.bundle_info(), precisions)


def _vision_wrapper(model):
    import torch

    inner = model.model
    patch = inner.config.vision_config.patch_size

    class Vision(torch.nn.Module):
        """Tiles -> image features, as get_image_features computes them for unpadded images.

        Three changes keep one traced graph valid for any tile count and for float16: the
        padding-image filter (a data-dependent shape) is left out, as the runtime never sends padding
        tiles; patch positions use integer arithmetic, floor(index * side / patches), instead of
        float torch.bucketize (whose ONNX form feeds a float index to Gather, and which float16 would
        round differently); the attention bias is -1e4, not float32's minimum, which is -inf in
        float16. For the full tiles the processor makes, the numbers equal transformers' exactly.
        """

        def __init__(self) -> None:
            super().__init__()
            self.vision_model = inner.vision_model
            self.connector = inner.connector

        def embed(self, pixel_values, patch_mask):
            embeddings = self.vision_model.embeddings
            tiles = pixel_values.shape[0]
            patches = embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
            side = embeddings.num_patches_per_side

            def buckets(count, length):
                index = torch.arange(length)[None, :] * side
                return torch.clamp(torch.div(index, count.clamp(min=1)[:, None], rounding_mode="floor"),
                                   max=side - 1)

            rows = buckets(patch_mask[:, :, 0].sum(1), patch_mask.shape[1])
            cols = buckets(patch_mask[:, 0, :].sum(1), patch_mask.shape[2])
            positions = (rows[:, :, None] * side + cols[:, None, :]).reshape(tiles, -1)
            positions = torch.where(patch_mask.reshape(tiles, -1), positions, torch.zeros_like(positions))
            return patches + embeddings.position_embedding(positions)

        def forward(self, pixel_values, pixel_attention_mask):
            # (batch, images, 3, H, W) as the published graphs take it; the images of all batches are tiles
            pixel_values = pixel_values.flatten(0, 1)
            pixel_attention_mask = pixel_attention_mask.flatten(0, 1)
            tiles, _, height, width = pixel_values.shape
            grid = pixel_attention_mask.reshape(tiles, height // patch, patch, width // patch, patch)
            patch_mask = grid.to(torch.int64).sum(dim=(2, 4)) > 0
            hidden = self.embed(pixel_values, patch_mask)
            keep = patch_mask.reshape(tiles, 1, 1, -1)
            bias = torch.where(keep, torch.zeros((), dtype=hidden.dtype), torch.full((), -1e4, dtype=hidden.dtype))
            hidden = self.vision_model.encoder(inputs_embeds=hidden, attention_mask=bias).last_hidden_state
            return self.connector(self.vision_model.post_layernorm(hidden))

    return Vision()


def export_vision(model, path: Path, opset: int) -> None:
    import torch

    size = model.config.vision_config.image_size
    pixels = torch.randn(1, 2, 3, size, size)
    mask = torch.ones(1, 2, size, size, dtype=torch.bool)
    torch.onnx.export(_vision_wrapper(model), (pixels, mask), str(path), dynamo=False, opset_version=opset,
                      input_names=list(VISION.inputs), output_names=list(VISION.outputs),
                      dynamic_axes={"pixel_values": {0: "batch_size", 1: "num_images"},
                                    "pixel_attention_mask": {0: "batch_size", 1: "num_images"},
                                    "image_features": {0: "batch_size_x_num_images"}})


def export_embed(model, path: Path, opset: int) -> None:
    import torch

    embed = model.get_input_embeddings()
    ids = torch.tensor([[1, 2, 3]], dtype=torch.int64)
    torch.onnx.export(embed, (ids,), str(path), dynamo=False, opset_version=opset,
                      input_names=list(EMBED.inputs), output_names=list(EMBED.outputs),
                      dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                    "inputs_embeds": {0: "batch_size", 1: "sequence_length"}})


def _decoder_wrapper(model, layers: int):
    import torch
    from transformers import DynamicCache

    config = model.config

    class Decoder(torch.nn.Module):
        """Flat past tensors -> DynamicCache -> logits of the last position + flat present tensors."""

        def __init__(self) -> None:
            super().__init__()
            self.text_model = model.model.text_model
            self.lm_head = model.lm_head

        def forward(self, inputs_embeds, attention_mask, position_ids, *past):
            cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(layers)],
                                 config=config)
            out = self.text_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                             past_key_values=cache, use_cache=True)
            logits = self.lm_head(out.last_hidden_state[:, -1:, :])
            presents = []
            for layer in out.past_key_values.layers:
                presents += [layer.keys, layer.values]
            return (logits, *presents)

    return Decoder()


def export_decoder(model, path: Path, opset: int) -> None:
    """Export the merged decoder: 2 cache tensors (key, value) per layer in and out."""
    import torch

    text = model.config.text_config
    layers = text.num_hidden_layers
    heads = text.num_key_value_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    seq, past_len = 3, 2
    embeds = torch.randn(1, seq, text.hidden_size)
    mask = torch.ones(1, past_len + seq, dtype=torch.int64)
    positions = torch.arange(past_len, past_len + seq, dtype=torch.int64)[None]
    past = [torch.randn(1, heads, past_len, head_dim) for _ in range(2 * layers)]
    past_names, present_names = cache_names(layers, "past_key_values"), cache_names(layers, "present")
    axes = {"inputs_embeds": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size"}}
    axes |= {name: {0: "batch_size", 2: "past_sequence_length"} for name in past_names}
    axes |= {name: {0: "batch_size", 2: "total_sequence_length"} for name in present_names}
    torch.onnx.export(_decoder_wrapper(model, layers), (embeds, mask, positions, *past), str(path), dynamo=False,
                      opset_version=opset, input_names=[*DECODER.inputs, *past_names],
                      output_names=[*DECODER.outputs, *present_names], dynamic_axes=axes)
