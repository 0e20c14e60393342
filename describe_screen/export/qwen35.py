"""Export Qwen3.5 (transformers `qwen3_5`) to the three graphs of onnx-community's `-OPT` repos, same names and layout.

The published contract (see the family's runtime module and ../shared/specs/qwen35-onnx.md):
- onnx/embed_tokens{suffix}.onnx: input_ids [B,S] int64 -> inputs_embeds [B,S,H] float32 (q4: 4-bit table read
  by com.microsoft.GatherBlockQuantized).
- onnx/vision_encoder{suffix}.onnx: pixel_values [N, 3*2*16*16] float32, image_grid_thw [n_images,3] int64 ->
  image_features [N/4, H]. Everything transformers derives from the grid (patch rows and columns in 2x2 merge
  order, the bilinear resampling of the learnt position table, 2-D rotary angles, one attention block per
  frame) is computed inside the graph, so any image size and any number of images work.
- onnx/decoder_model_merged{suffix}.onnx: inputs_embeds, attention_mask [B,past+S], position_ids [3,B,S]
  (mRoPE), num_logits_to_keep (scalar; 1 = last position, 0 = all), and per layer past_key_values.{i}.key/.value
  [B,kv_heads,past,head_dim] (full attention) or past_conv.{i} [B,conv_dim,kernel-1] and past_recurrent.{i}
  [B,heads,key_dim,value_dim] (Gated DeltaNet) -> logits and the matching present.* / present_conv.* /
  present_recurrent.* outputs.
Float inputs and outputs are float32, except in the _fp16 files: float16 there (the decoder's inputs_embeds stays
float32), so a runtime reads each type from its session.

The graphs are written from the checkpoint's tensors (graph.GraphWriter), read one at a time from its
safetensors files, so the real 2B exports in bounded memory. Each layer is onnxruntime's fused operators:
Gated DeltaNet = CausalConvWithState + LinearAttention (gated_delta) + LinearAttentionGate + GatedRMSNorm; full
attention = one packed q/k/v/gate projection, per-head RMS norms, MRotaryEmbedding (interleaved sections, partial
rotary) and GroupQueryAttention, gated by sigmoid; residuals and norms = SkipSimplifiedLayerNormalization with
Qwen's (1 + weight) scales. Weight sets: fp32 (no suffix); q4 (MatMulNBits, float32 activations, blocks of 32,
with zero points: the published embed_tokens_q4 size to the byte; the tiny gate projections b/a stay float32 as
they drive the recurrence, where the published decoder quantises them too); fp16 for CUDA (float16 weights,
activations and caches; the decoder still takes float32 inputs_embeds and casts inside).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.export import common
from describe_screen.export.graph import MS, GraphWriter

if TYPE_CHECKING:
    import numpy as np

    from describe_screen.models import ModelManifest

EMBED, VISION, DECODER = "embed_tokens", "vision_encoder", "decoder_model_merged"
GRAPHS = (EMBED, VISION, DECODER)
WEIGHT_SETS = ("fp32", "fp16", "q4")  # suffixes "", "_fp16" and "_q4", as published
ROOT_FILES = ("config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
              "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
FLOAT, INT64, INT32 = 1, 7, 6  # onnx.TensorProto element types

# The chat template of Qwen3.5-0.8B and -2B: the family's template (as Qwen/Qwen3.5-27B publishes it) with
# thinking opt-in, which is how the small sizes ship ("operates in non-thinking mode by default").
CHAT_TEMPLATE = """\
{%- set image_count = namespace(value=0) %}
{%- set video_count = namespace(value=0) %}
{%- macro render_content(content, do_vision_count, is_system_content=false) %}
    {%- if content is string %}
        {{- content }}
    {%- elif content is iterable and content is not mapping %}
        {%- for item in content %}
            {%- if 'image' in item or 'image_url' in item or item.type == 'image' %}
                {%- if is_system_content %}
                    {{- raise_exception('System message cannot contain images.') }}
                {%- endif %}
                {%- if do_vision_count %}
                    {%- set image_count.value = image_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}
                    {{- 'Picture ' ~ image_count.value ~ ': ' }}
                {%- endif %}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' }}
            {%- elif 'video' in item or item.type == 'video' %}
                {%- if is_system_content %}
                    {{- raise_exception('System message cannot contain videos.') }}
                {%- endif %}
                {%- if do_vision_count %}
                    {%- set video_count.value = video_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}
                    {{- 'Video ' ~ video_count.value ~ ': ' }}
                {%- endif %}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' }}
            {%- elif 'text' in item %}
                {{- item.text }}
            {%- else %}
                {{- raise_exception('Unexpected item type in content.') }}
            {%- endif %}
        {%- endfor %}
    {%- elif content is none or content is undefined %}
        {{- '' }}
    {%- else %}
        {{- raise_exception('Unexpected content type.') }}
    {%- endif %}
{%- endmacro %}
{%- if not messages %}
    {{- raise_exception('No messages provided.') }}
{%- endif %}
{%- if tools and tools is iterable and tools is not mapping %}
    {{- '<|im_start|>system\\n' }}
    {{- "# Tools\\n\\nYou have access to the following functions:\\n\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>" }}
    {{- '\\n\\nIf you choose to call a function ONLY reply in the following format with NO suffix:\\n\\n<tool_call>\\n\
<function=example_function_name>\\n<parameter=example_parameter_1>\\nvalue_1\\n</parameter>\\n<parameter=example_param\
eter_2>\\nThis is the value for the second parameter\\nthat can span\\nmultiple lines\\n</parameter>\\n</functio\
n>\\n</t\
ool_call>\\n\\n<IMPORTANT>\\nReminder:\\n- Function calls MUST follow the specified format: an inner <function=...></fu\
nction> block must be nested within <tool_call></tool_call> XML tags\\n- Required parameters MUST be specified\\n- You \
may provide optional reasoning for your function call in natural language BEFORE the function call, but NOT after\\n- \
If there is no function call available, answer the question like normal with your current knowledge and do not tell \
the user about function calls\\n</IMPORTANT>' }}
    {%- if messages[0].role == 'system' %}
        {%- set content = render_content(messages[0].content, false, true)|trim %}
        {%- if content %}
            {{- '\\n\\n' + content }}
        {%- endif %}
    {%- endif %}
    {{- '<|im_end|>\\n' }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {%- set content = render_content(messages[0].content, false, true)|trim %}
        {{- '<|im_start|>system\\n' + content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" %}
        {%- set content = render_content(message.content, false)|trim %}
        {%- if not(content.startswith('<tool_response>') and content.endswith('</tool_response>')) %}
            {%- set ns.multi_step_tool = false %}
            {%- set ns.last_query_index = index %}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if ns.multi_step_tool %}
    {{- raise_exception('No user query found in messages.') }}
{%- endif %}
{%- for message in messages %}
    {%- set content = render_content(message.content, true)|trim %}
    {%- if message.role == "system" %}
        {%- if not loop.first %}
            {{- raise_exception('System message must be at the beginning.') }}
        {%- endif %}
    {%- elif message.role == "user" %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1]\
.lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- set reasoning_content = reasoning_content|trim %}
        {%- if loop.index0 > ns.last_query_index %}
            {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content + '\\n</think>\\n\\n' + content }}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {%- if message.tool_calls and message.tool_calls is iterable and message.tool_calls is not mapping %}
            {%- for tool_call in message.tool_calls %}
                {%- if tool_call.function is defined %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {%- if loop.first %}
                    {%- if content|trim %}
                        {{- '\\n\\n<tool_call>\\n<function=' + tool_call.name + '>\\n' }}
                    {%- else %}
                        {{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}
                    {%- endif %}
                {%- else %}
                    {{- '\\n<tool_call>\\n<function=' + tool_call.name + '>\\n' }}
                {%- endif %}
                {%- if tool_call.arguments is defined %}
                    {%- for args_name, args_value in tool_call.arguments|items %}
                        {{- '<parameter=' + args_name + '>\\n' }}
                        {%- set args_value = args_value | tojson | safe if args_value is mapping or (args_value is \
sequence and args_value is not string) else args_value | string %}
                        {{- args_value }}
                        {{- '\\n</parameter>\\n' }}
                    {%- endfor %}
                {%- endif %}
                {{- '</function>\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.previtem and loop.previtem.role != "tool" %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- content }}
        {{- '\\n</tool_response>' }}
        {%- if not loop.last and loop.nextitem.role != "tool" %}
            {{- '<|im_end|>\\n' }}
        {%- elif loop.last %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- else %}
        {{- raise_exception('Unexpected message role.') }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is true %}
        {{- '<think>\\n' }}
    {%- else %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""


def preprocessor_config(patch: int = 16, min_pixels: int = 65_536, max_pixels: int = 16_777_216) -> dict[str, Any]:
    """preprocessor_config.json as Qwen3.5 publishes it: the Qwen2-VL image processor (smart_resize between
    min and max pixels, factor patch x merge, mean = std = 0.5, frames repeated to the temporal patch)."""
    return {"size": {"longest_edge": max_pixels, "shortest_edge": min_pixels}, "patch_size": patch,
            "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
            "processor_class": "Qwen3VLProcessor", "image_processor_type": "Qwen2VLImageProcessorFast"}


def file_name(graph: str, precision: str) -> str:
    return f"{graph}{'' if precision == 'fp32' else '_' + precision}.onnx"


# -- reading the checkpoint ------------------------------------------------------------------------------------

class Checkpoint:
    """The safetensors tensors of a checkpoint folder, read one at a time as float32 numpy arrays."""

    def __init__(self, folder: Path) -> None:
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            shards = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            self.files = {name: folder / shard for name, shard in shards.items()}
        else:
            from safetensors import safe_open

            with safe_open(str(folder / "model.safetensors"), "pt") as handle:
                self.files = dict.fromkeys(handle.keys(), folder / "model.safetensors")

    def has(self, name: str) -> bool:
        return name in self.files

    def __call__(self, name: str) -> np.ndarray:
        from safetensors import safe_open

        with safe_open(str(self.files[name]), "pt") as handle:
            return handle.get_tensor(name).float().numpy()


def _prefixes(weights: Checkpoint) -> tuple[str, str]:
    """(text, vision) name prefixes: transformers' own, or the older layout some repos keep."""
    text = "model.language_model." if weights.has("model.language_model.embed_tokens.weight") else "model."
    vision = "model.visual." if any(n.startswith("model.visual.") for n in weights.files) else "visual."
    return text, vision


def _param(g: GraphWriter, weights: Checkpoint, name: str) -> str:
    return g.weight(name, weights(name))


def _lm_head(weights: Checkpoint, text: str) -> np.ndarray:
    return weights("lm_head.weight") if weights.has("lm_head.weight") else weights(text + "embed_tokens.weight")


# -- embed_tokens ------------------------------------------------------------------------------------------------

def write_embed(weights: Checkpoint, path: Path, quantize: bool, half: bool) -> None:
    import numpy as np

    from describe_screen.export.graph import BLOCK, quantize_4bit

    text, _ = _prefixes(weights)
    table = weights(text + "embed_tokens.weight")
    g = GraphWriter(path, half=half)
    ids = g.input("input_ids", INT64, ["batch_size", "sequence_length"])
    g.output("inputs_embeds", g.float, ["batch_size", "sequence_length", table.shape[1]])
    if quantize:  # one row per token: blocks of 32 along the hidden size, as GatherBlockQuantized reads them
        packed, scales, zero_points = quantize_4bit(np.ascontiguousarray(table.T))
        vocab = table.shape[0]
        del table
        g.op("GatherBlockQuantized", [g.weight("embed_tokens.qweight", packed.reshape(vocab, -1)), ids,
                                      g.weight("embed_tokens.scales", scales),
                                      g.weight("embed_tokens.zero_points", zero_points)],
             ["inputs_embeds"], MS, bits=4, block_size=BLOCK, gather_axis=0, quantize_axis=1)
    else:
        g.op("Gather", [g.weight("embed_tokens.weight", table), ids], ["inputs_embeds"])
    g.save(EMBED)


# -- vision_encoder ----------------------------------------------------------------------------------------------

def _grid_positions(g: GraphWriter, grid: str, total: str, merge: int) -> dict[str, str]:
    """Per patch (int64 [N]): row and column in its frame (2x2 merge-window order, as the processor emits
    patches), its frame's height, width and size, and the start of its frame (one attention block per frame)."""
    t, h, w = (g.op("Squeeze", [part, g.const([1])]) for part in g.op("Split", [grid], 3, axis=1))
    frame = g.op("Mul", [h, w])
    ends = g.op("CumSum", [g.op("Mul", [t, frame]), g.const(0)])
    patch = g.op("Range", [g.const(0), total, g.const(1)])
    # image index of each patch: how many images end at or before it
    image = g.op("ReduceSum", [g.op("Cast", [g.op("GreaterOrEqual", [g.op("Unsqueeze", [patch, g.const([0])]),
                                                                      g.op("Unsqueeze", [ends, g.const([1])])])],
                                     to=INT64), g.const([0])], keepdims=0)
    height, width, size = (g.op("Gather", [x, image]) for x in (h, w, frame))
    start = g.op("Gather", [g.op("Sub", [ends, g.op("Mul", [t, frame])]), image])
    local = g.op("Sub", [patch, start])
    within = g.op("Mod", [local, size])
    frame_start = g.op("Sub", [patch, within])
    m, mm = g.const(merge), g.const(merge * merge)
    block = g.op("Div", [within, mm])
    blocks_w = g.op("Div", [width, m])
    row = g.op("Add", [g.op("Mul", [g.op("Div", [block, blocks_w]), m]), g.op("Mod", [g.op("Div", [within, m]), m])])
    col = g.op("Add", [g.op("Mul", [g.op("Mod", [block, blocks_w]), m]), g.op("Mod", [within, m])])
    return {"row": row, "col": col, "height": height, "width": width, "frame": frame_start, "size": size}


def _axis_taps(g: GraphWriter, index: str, size: str, side: int) -> tuple[str, str]:
    """Bilinear taps (int64 [N,2]) and weights (float [N,2]) along one axis, align_corners=True, computed in
    the same float32 steps as transformers' get_vision_interpolation_indices_and_weights."""
    src = g.op("Div", [g.op("Mul", [g.op("Cast", [index], to=FLOAT), g.const(float(side - 1), "float32")]),
                       g.op("Cast", [g.op("Max", [g.op("Sub", [size, g.const(1)]), g.const(1)])], to=FLOAT)])
    floor = g.op("Unsqueeze", [g.op("Floor", [src]), g.const([1])])
    offsets = g.const([0.0, 1.0], "float32")
    taps = g.op("Clip", [g.op("Cast", [g.op("Add", [floor, offsets])], to=INT64), g.const(0), g.const(side - 1)])
    distance = g.op("Abs", [g.op("Sub", [g.op("Sub", [g.op("Unsqueeze", [src, g.const([1])]), floor]), offsets])])
    weights = g.op("Max", [g.op("Sub", [g.const(1.0, "float32"), distance]), g.const(0.0, "float32")])
    return taps, weights


def write_vision(weights: Checkpoint, config: dict, path: Path, quantize: bool, half: bool) -> None:
    import numpy as np

    vc = config["vision_config"]
    _, p = _prefixes(weights)
    hidden, heads, merge = vc["hidden_size"], vc["num_heads"], vc["spatial_merge_size"]
    head_dim = hidden // heads
    side = int(vc["num_position_embeddings"] ** 0.5)
    theta = float((vc.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    patch_width = vc.get("in_channels", 3) * vc["temporal_patch_size"] * vc["patch_size"] ** 2
    g = GraphWriter(path, quantize, half)
    pixels = g.input("pixel_values", g.float, ["num_patches", patch_width])
    grid = g.input("image_grid_thw", INT64, ["num_images", 3])
    g.output("image_features", g.float, ["num_image_tokens", vc["out_hidden_size"]])

    total = g.op("Gather", [g.op("Shape", [pixels]), g.const(0)])
    pos = _grid_positions(g, grid, total, merge)
    # learnt positions, resampled bilinearly from the square table to this grid
    row_taps, row_w = _axis_taps(g, pos["row"], pos["height"], side)
    col_taps, col_w = _axis_taps(g, pos["col"], pos["width"], side)
    flat = [-1, 4]
    taps = g.op("Reshape", [g.op("Add", [g.op("Mul", [g.op("Unsqueeze", [row_taps, g.const([2])]), g.const(side)]),
                                         g.op("Unsqueeze", [col_taps, g.const([1])])]), g.const(flat)])
    tap_w = g.op("Reshape", [g.op("Mul", [g.op("Unsqueeze", [row_w, g.const([2])]),
                                          g.op("Unsqueeze", [col_w, g.const([1])])]), g.const(flat)])
    table = g.weight("pos_embed.weight", weights(p + "pos_embed.weight"))
    pos_embed = g.op("ReduceSum", [g.op("Mul", [g.op("Gather", [table, taps]),
                                                g.to_float(g.op("Unsqueeze", [tap_w, g.const([2])]))]), g.const([1])],
                     keepdims=0)
    # 2-D rotary angles: [rows x inv_freq | cols x inv_freq] per patch, one cache row per patch
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim // 2, 2, dtype=np.float32) / (head_dim // 2))
    freq = g.const(inv_freq[None, :].astype(np.float32), "float32")
    angles = g.op("Concat", [g.op("Mul", [g.op("Unsqueeze", [g.op("Cast", [pos[k]], to=FLOAT), g.const([1])]), freq])
                             for k in ("row", "col")], axis=1)
    cos, sin = g.to_float(g.op("Cos", [angles])), g.to_float(g.op("Sin", [angles]))
    positions = g.op("Unsqueeze", [g.op("Range", [g.const(0), total, g.const(1)]), g.const([0])])
    # attention stays inside each frame. When every frame has the same size (one image, or frames and images of
    # one size) the frames are a batch of sequences; otherwise an additive mask keeps them apart, built only then:
    # onnxruntime's CPU attention takes a memory-saving path without one (for 3,680 patches 4x faster, 0.7 GB
    # less), so a single screenshot must never pay for it.
    frames = pos["frame"]
    largest = g.op("ReduceMax", [pos["size"]], keepdims=1)
    uniform = g.op("Equal", [g.op("ReduceMin", [pos["size"]], keepdims=1), largest])
    batched = g.op("Concat", [g.op("Div", [total, largest]), largest, g.const([hidden])], axis=0)
    same, apart = g.branch(), g.branch()
    same_bias = same.op("Identity", [same.const(np.zeros((1, 1, 1, 1)), g.float_name)])
    mask = apart.op("Equal", [apart.op("Unsqueeze", [frames, g.const([1])]),
                              apart.op("Unsqueeze", [frames, g.const([0])])])
    apart_bias = apart.op("Unsqueeze", [apart.op("Where", [mask, g.const(0.0, g.float_name),
                                                           g.const(-np.inf, g.float_name)]), g.const([0, 1])])
    bias = g.op("If", [uniform], 1, then_branch=same.subgraph("no_mask", [same_bias]),
                else_branch=apart.subgraph("frame_mask", [apart_bias]))

    def attention(q: str, k: str, v: str) -> str:
        per_frame, masked = g.branch(), g.branch()
        out = per_frame.op("MultiHeadAttention", [per_frame.op("Reshape", [t, batched]) for t in (q, k, v)], 1, MS,
                           num_heads=heads)
        out = per_frame.op("Reshape", [out, g.const([1, -1, hidden])])
        masked_out = masked.op("MultiHeadAttention", [q, k, v, "", "", bias], 1, MS, num_heads=heads)
        return g.op("If", [uniform], 1, then_branch=per_frame.subgraph("frames_as_batch", [out]),
                    else_branch=masked.subgraph("masked", [masked_out]))

    conv = weights(p + "patch_embed.proj.weight").reshape(hidden, -1)
    x = g.op("Unsqueeze", [pixels, g.const([0])])  # [1, N, C*T*P*P]: one sequence of patches
    x = g.op("Add", [g.linear(x, conv.T, "patch_embed", weights(p + "patch_embed.proj.bias")), pos_embed])
    depth = vc["depth"]
    blk = f"{p}blocks.0."
    normed = g.op("LayerNormalization", [x, _param(g, weights, blk + "norm1.weight"),
                                         _param(g, weights, blk + "norm1.bias")], axis=-1, epsilon=1e-6)
    for i in range(depth):
        blk = f"{p}blocks.{i}."
        qkv = g.linear(normed, weights(blk + "attn.qkv.weight").T, f"blocks.{i}.qkv", weights(blk + "attn.qkv.bias"))
        q, k, v = g.op("Split", [qkv], 3, axis=-1)
        q, k = (g.op("RotaryEmbedding", [t, positions, cos, sin], 1, MS, num_heads=heads) for t in (q, k))
        attn = attention(q, k, v)
        attn = g.linear(attn, weights(blk + "attn.proj.weight").T, f"blocks.{i}.proj", weights(blk + "attn.proj.bias"))
        normed, _, _, x = g.op("SkipLayerNormalization", [attn, x, _param(g, weights, blk + "norm2.weight"),
                                                          _param(g, weights, blk + "norm2.bias")], 4, MS, epsilon=1e-6)
        h = g.linear(normed, weights(blk + "mlp.linear_fc1.weight").T, f"blocks.{i}.fc1",
                     weights(blk + "mlp.linear_fc1.bias"))
        h = g.op("FastGelu" if vc.get("hidden_act", "gelu_pytorch_tanh") == "gelu_pytorch_tanh" else "Gelu", [h], 1, MS)
        h = g.linear(h, weights(blk + "mlp.linear_fc2.weight").T, f"blocks.{i}.fc2",
                     weights(blk + "mlp.linear_fc2.bias"))
        nxt = f"{p}blocks.{i + 1}.norm1." if i + 1 < depth else f"{p}merger.norm."
        normed, _, _, x = g.op("SkipLayerNormalization", [h, x, _param(g, weights, nxt + "weight"),
                                                          _param(g, weights, nxt + "bias")], 4, MS, epsilon=1e-6)
    merged = g.op("Reshape", [normed, g.const([-1, hidden * merge * merge])])
    h = g.linear(merged, weights(p + "merger.linear_fc1.weight").T, "merger.fc1", weights(p + "merger.linear_fc1.bias"))
    h = g.op("Gelu", [h], 1, MS)
    g.linear(h, weights(p + "merger.linear_fc2.weight").T, "merger.fc2", weights(p + "merger.linear_fc2.bias"),
             output="image_features")
    g.save(VISION)


# -- decoder_model_merged ----------------------------------------------------------------------------------------

def cache_inputs(config: dict) -> list[tuple[str, str, list[Any]]]:
    """(past name, present name, shape) of every cache tensor, in input order, as the published graph has them."""
    tc = config["text_config"]
    conv_dim = 2 * tc["linear_num_key_heads"] * tc["linear_key_head_dim"] + \
        tc["linear_num_value_heads"] * tc["linear_value_head_dim"]
    caches = []
    for i, kind in enumerate(tc["layer_types"]):
        if kind == "linear_attention":
            caches += [(f"past_conv.{i}", f"present_conv.{i}",
                        ["batch_size", conv_dim, tc["linear_conv_kernel_dim"] - 1]),
                       (f"past_recurrent.{i}", f"present_recurrent.{i}",
                        ["batch_size", tc["linear_num_value_heads"], tc["linear_key_head_dim"],
                         tc["linear_value_head_dim"]])]
        else:
            for part in ("key", "value"):
                caches.append((f"past_key_values.{i}.{part}", f"present.{i}.{part}",
                               ["batch_size", tc["num_key_value_heads"], "past_sequence_length", tc["head_dim"]]))
    return caches


def _norm_scale(weights: Checkpoint, name: str, g: GraphWriter) -> str:
    """Qwen3.5's zero-centred RMSNorm weight as the scale onnxruntime's norms multiply by: 1 + weight."""
    return g.weight(name, 1.0 + weights(name))


def _full_attention(g: GraphWriter, weights: Checkpoint, tc: dict, pre: str, i: int, x: str, rope: dict) -> str:
    import numpy as np

    heads, kv_heads = tc["num_attention_heads"], tc["num_key_value_heads"]
    dim, hidden = tc["head_dim"], tc["hidden_size"]
    q_gate = weights(pre + "self_attn.q_proj.weight").reshape(heads, 2, dim, hidden)  # per head: query rows, gate rows
    packed = np.concatenate([q_gate[:, 0].reshape(-1, hidden), weights(pre + "self_attn.k_proj.weight"),
                             weights(pre + "self_attn.v_proj.weight"), q_gate[:, 1].reshape(-1, hidden)])
    del q_gate
    qkvg = g.linear(x, packed.T, f"layers.{i}.attn.qkvg")
    q, k, v, gate = g.op("Split", [qkvg, g.const([heads * dim, kv_heads * dim, kv_heads * dim, heads * dim])], 4,
                         axis=-1)
    rotated = []
    for t, n, norm in ((q, heads, "q_norm"), (k, kv_heads, "k_norm")):
        t = g.op("Reshape", [t, g.const([0, 0, n, dim])])
        t = g.op("SimplifiedLayerNormalization", [t, _norm_scale(weights, f"{pre}self_attn.{norm}.weight", g)],
                 axis=-1, epsilon=tc["rms_norm_eps"])
        t = g.op("Reshape", [t, g.const([0, 0, n * dim])])
        rotated.append(g.op("MRotaryEmbedding", [t, rope["positions"], rope["cos"], rope["sin"]], 1, MS,
                            mrope_section=rope["section"], mrope_layout=1, num_heads=n,
                            rotary_embedding_dim=rope["dim"]))
    attn = g.op("GroupQueryAttention", [rotated[0], rotated[1], v, f"past_key_values.{i}.key",
                                        f"past_key_values.{i}.value", rope["seqlens_k"], rope["total"]],
                [f"layers.{i}.attn/out", f"present.{i}.key", f"present.{i}.value"],
                MS, num_heads=heads, kv_num_heads=kv_heads, scale=dim ** -0.5)[0]
    gated = g.op("Mul", [attn, g.op("Sigmoid", [gate])])
    return g.linear(gated, weights(pre + "self_attn.o_proj.weight").T, f"layers.{i}.attn.o_proj")


def _gated_delta_net(g: GraphWriter, weights: Checkpoint, tc: dict, pre: str, i: int, x: str) -> str:
    import numpy as np

    nk, nv = tc["linear_num_key_heads"], tc["linear_num_value_heads"]
    dk, dv = tc["linear_key_head_dim"], tc["linear_value_head_dim"]
    key_dim, value_dim = nk * dk, nv * dv
    la = pre + "linear_attn."
    qkvz = np.concatenate([weights(la + "in_proj_qkv.weight"), weights(la + "in_proj_z.weight")])
    qkv, z = g.op("Split", [g.linear(x, qkvz.T, f"layers.{i}.linear_attn.qkvz"), g.const([2 * key_dim + value_dim,
                                                                                           value_dim])], 2, axis=-1)
    del qkvz
    ba = np.concatenate([weights(la + "in_proj_b.weight"), weights(la + "in_proj_a.weight")])
    b, a = g.op("Split", [g.linear(x, ba.T, f"layers.{i}.linear_attn.ba", dense=True), g.const([nv, nv])], 2, axis=-1)
    conv, _ = g.op("CausalConvWithState", [g.op("Transpose", [qkv], perm=[0, 2, 1]),
                                           g.weight(la + "conv1d.weight", weights(la + "conv1d.weight")), "",
                                           f"past_conv.{i}"], [f"layers.{i}.conv/out", f"present_conv.{i}"], MS,
                   activation="silu")
    conv = g.op("Transpose", [conv], perm=[0, 2, 1])
    qk, v = g.op("Split", [conv, g.const([2 * key_dim, value_dim])], 2, axis=-1)
    # l2norm(x) = x * rsqrt(sum(x^2) + 1e-6) is an RMS norm with epsilon 1e-6/d and scale 1/sqrt(d)
    qk = g.op("SimplifiedLayerNormalization", [g.op("Reshape", [qk, g.const([0, 0, 2 * nk, dk])]),
                                               g.const(np.full(dk, dk ** -0.5), g.float_name)],
              axis=-1, epsilon=1e-6 / dk)
    q, k = g.op("Split", [g.op("Reshape", [qk, g.const([0, 0, 2 * key_dim])]), g.const([key_dim, key_dim])], 2, axis=-1)
    if nv != nk:  # each query/key head serves nv/nk consecutive value heads
        q, k = (g.op("Reshape", [g.op("Expand", [g.op("Reshape", [t, g.const([0, 0, nk, 1, dk])]),
                                                 g.const([1, 1, 1, nv // nk, 1])]), g.const([0, 0, nv * dk])])
                for t in (q, k))
    decay, beta = g.op("LinearAttentionGate", [a, g.weight(la + "dt_bias", weights(la + "dt_bias"), float32=True),
                                               g.weight(la + "neg_exp_A", -np.exp(weights(la + "A_log")), float32=True),
                                               b], 2, MS)
    out, _ = g.op("LinearAttention", [q, k, v, f"past_recurrent.{i}", decay, beta],
                  [f"layers.{i}.linear_attention/out", f"present_recurrent.{i}"], MS, q_num_heads=nv, kv_num_heads=nv,
                  update_rule="gated_delta", scale=dk ** -0.5)
    normed = g.op("GatedRMSNorm", [out, g.weight(la + "norm.weight", weights(la + "norm.weight")), z], 1, MS,
                  activation="silu", epsilon=tc["rms_norm_eps"])
    return g.linear(normed, weights(la + "out_proj.weight").T, f"layers.{i}.linear_attn.out_proj")


def _mlp(g: GraphWriter, weights: Checkpoint, pre: str, i: int, x: str) -> str:
    import numpy as np

    inter = weights(pre + "mlp.gate_proj.weight").shape[0]
    gate_up = np.concatenate([weights(pre + "mlp.gate_proj.weight"), weights(pre + "mlp.up_proj.weight")])
    gate, up = g.op("Split", [g.linear(x, gate_up.T, f"layers.{i}.mlp.gate_up"), g.const([inter, inter])], 2, axis=-1)
    del gate_up
    act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])
    return g.linear(act, weights(pre + "mlp.down_proj.weight").T, f"layers.{i}.mlp.down_proj")


def write_decoder(weights: Checkpoint, config: dict, path: Path, quantize: bool, half: bool) -> None:
    import numpy as np

    tc = config["text_config"]
    text, _ = _prefixes(weights)
    hidden, dim = tc["hidden_size"], tc["head_dim"]
    rope_cfg = tc.get("rope_parameters") or {}
    rotary = int(dim * rope_cfg.get("partial_rotary_factor", 0.25))
    g = GraphWriter(path, quantize, half)
    # float32 in every weight set: the float16 graph casts inside, as the published fp16 decoders were fixed to
    embeds = g.to_float(g.input("inputs_embeds", FLOAT, ["batch_size", "sequence_length", hidden]))
    mask = g.input("attention_mask", INT64, ["batch_size", "total_sequence_length"])
    positions = g.input("position_ids", INT64, [3, "batch_size", "sequence_length"])
    keep = g.input("num_logits_to_keep", INT64, [])
    caches = cache_inputs(config)
    for past, _, shape in caches:
        g.input(past, g.float, shape)
    g.output("logits", g.float, ["batch_size", "num_logits", tc["vocab_size"]])
    for _, present, shape in caches:
        g.output(present, g.float, [("total_sequence_length" if d == "past_sequence_length" else d) for d in shape])

    # shared by every full-attention layer: GroupQueryAttention's lengths and the mRoPE angle table
    seqlens = g.op("Cast", [g.op("Sub", [g.op("ReduceSum", [mask, g.const([1])], keepdims=0), g.const(1)])], to=INT32)
    total = g.op("Cast", [g.op("Gather", [g.op("Shape", [mask]), g.const(1)])], to=INT32)
    # (MRotaryEmbedding wants at least as many table rows as new tokens, and image positions repeat)
    count = g.op("Max", [g.op("Add", [g.op("ReduceMax", [positions], keepdims=0), g.const(1)]),
                         g.op("Gather", [g.op("Shape", [positions]), g.const(2)])])
    theta = float(rope_cfg.get("rope_theta", 10_000_000.0))
    inv_freq = 1.0 / theta ** (np.arange(0, rotary, 2, dtype=np.float32) / rotary)
    angles = g.op("Mul", [g.op("Unsqueeze", [g.op("Cast", [g.op("Range", [g.const(0), count, g.const(1)])], to=FLOAT),
                                             g.const([1])]), g.const(inv_freq[None, :].astype(np.float32), "float32")])
    rope = {"positions": positions, "cos": g.to_float(g.op("Cos", [angles])), "sin": g.to_float(g.op("Sin", [angles])),
            "dim": rotary,
            "section": list(rope_cfg.get("mrope_section", [11, 11, 10])), "seqlens_k": seqlens, "total": total}

    x = g.op("SimplifiedLayerNormalization",
             [embeds, _norm_scale(weights, f"{text}layers.0.input_layernorm.weight", g)], axis=-1,
             epsilon=tc["rms_norm_eps"])
    h = embeds
    layers = tc["layer_types"]
    for i, kind in enumerate(layers):
        pre = f"{text}layers.{i}."
        if kind == "linear_attention":
            mixed = _gated_delta_net(g, weights, tc, pre, i, x)
        else:
            mixed = _full_attention(g, weights, tc, pre, i, x, rope)
        x, _, _, h = g.op("SkipSimplifiedLayerNormalization",
                          [mixed, h, _norm_scale(weights, pre + "post_attention_layernorm.weight", g)], 4, MS,
                          epsilon=tc["rms_norm_eps"])
        nxt = f"{text}layers.{i + 1}.input_layernorm.weight" if i + 1 < len(layers) else f"{text}norm.weight"
        x, _, _, h = g.op("SkipSimplifiedLayerNormalization",
                          [_mlp(g, weights, pre, i, x), h, _norm_scale(weights, nxt, g)], 4, MS,
                          epsilon=tc["rms_norm_eps"])
    # logits of the last num_logits_to_keep positions only (0 keeps all): the prefill never multiplies the
    # whole prompt by the vocabulary
    last = g.op("Slice", [x, g.op("Unsqueeze", [g.op("Neg", [keep]), g.const([0])]), g.const([2**62]), g.const([1])])
    g.linear(last, _lm_head(weights, text).T, "lm_head", output="logits")
    g.save(DECODER)


# -- the repo and the bundle ------------------------------------------------------------------------------------

def write_repo(source: Path, out_dir: Path, precisions: list[str]) -> Path:
    """Write `source` (a transformers checkpoint folder) as the published ONNX repo: root settings files and
    onnx/<graph><suffix>.onnx (+ .onnx_data) for each of `precisions` ("fp32", "q4")."""
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    weights = Checkpoint(source)
    graphs = out_dir / "onnx"
    graphs.mkdir(parents=True, exist_ok=True)
    for precision in precisions:
        if precision not in WEIGHT_SETS:
            raise ValueError(f"Qwen3.5 exports the weight sets {', '.join(WEIGHT_SETS)}, not {precision}")
        quantize, half = precision == "q4", precision == "fp16"
        write_embed(weights, graphs / file_name(EMBED, precision), quantize, half)
        write_vision(weights, config, graphs / file_name(VISION, precision), quantize, half)
        write_decoder(weights, config, graphs / file_name(DECODER, precision), quantize, half)
    for name in ROOT_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, out_dir / name)
    if not (out_dir / "chat_template.jinja").is_file():
        (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    if not (out_dir / "preprocessor_config.json").is_file():
        (out_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(), indent=2), encoding="utf-8")
    if not (out_dir / "processor_config.json").is_file():
        (out_dir / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen3VLProcessor"}, indent=2),
                                                       encoding="utf-8")
    return out_dir


def install_repo(repo: Path, out_dir: Path, info: dict[str, Any], precisions: list[str]) -> Path:
    """A bundle of `precisions` from a repo folder, stored as `models install` stores the published files:
    flat, the graphs and their data files next to the settings files, with manifest.json."""
    from describe_screen.vlm.manifest import copy_support_files, publish, staging_dir

    staging = staging_dir(out_dir)
    for precision in precisions:
        for graph in GRAPHS:
            for path in (repo / "onnx").glob(file_name(graph, precision) + "*"):
                shutil.copyfile(path, staging / path.name)
    copy_support_files(repo, staging, ROOT_FILES)
    return publish(staging, out_dir, info, precisions)


def weight_sets(precisions: list[str]) -> list[str]:
    """The requested precisions as this family's weight sets: its integer set ("int8", which "auto" asks for)
    is the published 4-bit one."""
    sets = {"int8": "q4"}
    return [s for s in WEIGHT_SETS if s in {sets.get(p, p) for p in precisions}]


def export(manifest: ModelManifest, out_dir: Path, precisions: list[str], source: str | Path | None) -> Path:
    """Export `manifest`'s model (from `source` or its pinned download) into the bundle `out_dir`."""
    import tempfile

    sets = weight_sets(precisions)
    src = common.resolve_source(manifest, source)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-repo-") as work:
        repo = write_repo(src, Path(work), sets)
        return install_repo(repo, out_dir, manifest.bundle_info(), sets)

