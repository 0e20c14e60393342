"""A llama-style text decoder rebuilt from onnxruntime's fused operators, and the loop state that runs it.

The decoder graphs we export and the published ones are TorchScript exports: about 3,000 small nodes per
token after onnxruntime's own optimisation (rotary embedding, repeat_kv, layer norms and masks spelt out
op by op), and a cache that is copied into a new, longer tensor at every step. This module reads the
weights out of such a graph and writes the same network as nine nodes per layer: two
SkipSimplifiedLayerNormalization, one packed q/k/v projection, GroupQueryAttention (rotary embedding
inside), one packed gate/up projection, QuickGelu as SiLU. The key/value cache becomes one buffer per
layer that the session writes in place (past and present are the same memory), grown by doubling when
full.

Each projection is carried over in the form the source stores it (float MatMul, int8 weights with
per-column scales, or 4-bit MatMulNBits blocks), so the derived graph computes what the source computes
with the same weights (4-bit blocks multiply in int8, see `_Graph.linear`); the downloaded files are
never changed (`Bundle.derived` keeps the copy).
Only what the CPU provider runs in float32 is rebuilt: fp16 graphs and CUDA sessions keep the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from describe_screen.vlm.onnx import BoundRunner

# Inputs of the rebuilt graph besides the cache buffers (past_key_values.{i}.key/.value).
INPUTS = ("inputs_embeds", "seqlens_k", "total_sequence_length")
PROJECTIONS = (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
               ("mlp", ("gate_proj", "up_proj", "down_proj")))
RECIPE = 2  # raise when build() changes: copies made by an older version are then made again
PRECISIONS = ("fp32", "int8", "q4")  # weight sets with float32 inputs and outputs, which this rebuilds
CHUNK = 256  # cache positions are allocated in multiples of this
PREFILL = 256  # prompt positions per session run (see Cache.step)


@dataclass(frozen=True)
class TextConfig:
    """What the rebuilt graph needs from config.json's text_config."""

    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    eps: float
    rope_theta: float
    max_positions: int


def text_config(config: dict[str, Any]) -> TextConfig | None:
    """The text model's shape when it is a plain llama (SmolLM2): no biases, SiLU, unscaled rotary
    embedding, a head size GroupQueryAttention's CPU kernel takes (a multiple of 16). None otherwise:
    the source graph then runs as it is."""
    text = config.get("text_config", config)
    rope = text.get("rope_parameters") or {}
    scaling = text.get("rope_scaling") or {}
    if text.get("model_type") != "llama" or text.get("attention_bias") or text.get("mlp_bias") \
            or text.get("hidden_act", "silu") != "silu" or rope.get("rope_type", "default") != "default" \
            or scaling.get("rope_type", scaling.get("type", "default")) != "default":
        return None
    heads = int(text["num_attention_heads"])
    hidden = int(text["hidden_size"])
    head_dim = int(text.get("head_dim") or hidden // heads)
    if head_dim % 16:
        return None
    return TextConfig(layers=int(text["num_hidden_layers"]), heads=heads,
                      kv_heads=int(text.get("num_key_value_heads") or heads), head_dim=head_dim, hidden=hidden,
                      eps=float(text.get("rms_norm_eps", 1e-6)),
                      rope_theta=float(rope.get("rope_theta", text.get("rope_theta", 10000.0))),
                      max_positions=int(text.get("max_position_embeddings", 2048)))


@dataclass
class Linear:
    """One projection x @ W as the source graph stores it.

    kind "float": arrays (W[K, N],); "int8": (W[K, N] int8/uint8, scale[N], zero_point[N]), run by
    DynamicQuantizeMatMul like onnxruntime's own fusion of the quantiser's nodes; "nbits": MatMulNBits'
    (packed B, scales, [zero points]) with its attributes, every array leading with N.
    """

    kind: str
    arrays: list[np.ndarray]
    attrs: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> int:
        return int(self.attrs["N"]) if self.kind == "nbits" else int(self.arrays[0].shape[1])


def packed(parts: list[Linear]) -> Linear:
    """Several projections of the same input as one, their outputs side by side: one matmul (and one
    quantisation of the input) instead of several. Per-tensor int8 scales are widened to per-column."""
    import numpy as np

    kinds = {p.kind for p in parts}
    if len(kinds) != 1:
        raise ValueError(f"mixed projection forms {sorted(kinds)}")
    kind = kinds.pop()
    if kind == "float":
        return Linear(kind, [np.concatenate([p.arrays[0] for p in parts], axis=1)])
    if kind == "int8":
        weights = np.concatenate([p.arrays[0] for p in parts], axis=1)
        scales = np.concatenate([np.broadcast_to(p.arrays[1], (p.columns,)) for p in parts]).astype(np.float32)
        zeros = np.concatenate([np.broadcast_to(p.arrays[2], (p.columns,)) for p in parts]).astype(weights.dtype)
        return Linear(kind, [weights, scales, zeros])
    shared = {k: v for k, v in parts[0].attrs.items() if k != "N"}
    if any({k: v for k, v in p.attrs.items() if k != "N"} != shared or len(p.arrays) != len(parts[0].arrays)
           for p in parts):
        raise ValueError("4-bit projections with different block layouts")
    # Every MatMulNBits array is laid out column by column (B: N x blocks x bytes; scales and zero
    # points N x blocks, or flat in that order), so the columns of several join along the first axis.
    arrays = [np.concatenate([p.arrays[i] for p in parts]) for i in range(len(parts[0].arrays))]
    return Linear(kind, arrays, {**shared, "N": sum(p.columns for p in parts)})


@dataclass
class DecoderWeights:
    """The weights of a llama decoder, read out of any of its exported graphs."""

    norms: dict[str, np.ndarray]  # "{i}.input", "{i}.post", "final"
    linears: dict[str, Linear]  # "{i}.q_proj" ... "{i}.down_proj", "lm_head"


def read_weights(model: onnx.ModelProto, config: TextConfig) -> DecoderWeights:
    """Find every projection and norm weight by the node names the TorchScript exporter gives them
    (".../layers.3/self_attn/q_proj/MatMul", "text_model.layers.3.input_layernorm.weight"); our exports
    and optimum's (onnx-community) name them alike. Raises ValueError when a weight is not found."""
    from onnx import numpy_helper

    graph = model.graph
    init = {t.name: t for t in graph.initializer}
    # The exporter stores equal weights once (e.g. norms still all ones) and names the others through
    # Identity nodes.
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in init:
            init[node.output[0]] = init[node.input[0]]

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(init[name])

    linears: dict[str, Linear] = {}
    norms: dict[str, np.ndarray] = {}
    pattern = re.compile(r"layers\.(\d+)/(self_attn|mlp)/(\w+_proj)/|/(lm_head)/")
    for node in graph.node:
        if node.op_type in ("MatMul", "MatMulInteger", "MatMulNBits") and len(node.input) > 1 \
                and node.input[1] in init and (match := pattern.search(node.name)):
            key = "lm_head" if match.group(4) else f"{match.group(1)}.{match.group(3)}"
            linears[key] = _linear(node, array, init)
        elif node.op_type == "Mul":
            for name in node.input:
                if name in init and len(init[name].dims) == 1 and init[name].dims[0] == config.hidden:
                    if match := re.search(r"layers\.(\d+)\.(input|post_attention)_layernorm\.weight$", name):
                        norms[f"{match.group(1)}.{match.group(2).split('_')[0]}"] = array(name)
                    elif name.endswith("norm.weight") and "layers." not in name:
                        norms["final"] = array(name)
    wanted = [f"{i}.{p}" for i in range(config.layers) for _, names in PROJECTIONS for p in names] + ["lm_head"]
    if missing := [k for k in wanted if k not in linears]:
        raise ValueError(f"projection {missing[0]} not found")
    wanted_norms = [f"{i}.{k}" for i in range(config.layers) for k in ("input", "post")] + ["final"]
    if missing := [k for k in wanted_norms if k not in norms]:
        raise ValueError(f"norm {missing[0]} not found")
    return DecoderWeights(norms, linears)


def _linear(node: onnx.NodeProto, array: Any, init: dict) -> Linear:
    import numpy as np
    from onnx import helper

    if node.op_type == "MatMul":
        return Linear("float", [array(node.input[1]).astype(np.float32)])
    if node.op_type == "MatMulNBits":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if len(node.input) > 4 and any(node.input[4:]):
            raise ValueError(f"{node.name}: group indices or bias are not supported")
        arrays = [array(name) for name in node.input[1:4] if name]
        # the accuracy level is not carried over: the fused graph sets its own (see _Graph.linear)
        return Linear("nbits", arrays, {k: int(attrs[k]) for k in ("K", "N", "bits", "block_size")})
    # MatMulInteger(x_q, W_q, x_zero, W_zero) -> Cast -> Mul(., x_scale * W_scale): the quantiser's pattern.
    weight = array(node.input[1])
    zero = array(node.input[3]) if len(node.input) > 3 and node.input[3] in init else np.zeros((), weight.dtype)
    scale_name = node.input[1].removesuffix("_quantized") + "_scale"
    if scale_name not in init:
        raise ValueError(f"{node.name}: weight scale {scale_name} not found")
    return Linear("int8", [weight, array(scale_name).astype(np.float32), zero])


class _Graph:
    """Nodes and initializers of the graph being written, with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def add(self, op: str, inputs: list[str], outputs: list[str], name: str, microsoft: bool = False,
            **attrs: Any) -> list[str]:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=name,
                                           domain="com.microsoft" if microsoft else "", **attrs))
        return outputs

    def linear(self, x: str, weights: Linear, name: str, out: str = "") -> str:
        """x @ W in the projection's own form; returns the output's name (`out`, or one made up)."""
        out = out or f"{name}/out"
        arrays = [self.constant(f"{name}.{i}", a) for i, a in enumerate(weights.arrays)]
        if weights.kind == "float":
            self.add("MatMul", [x, arrays[0]], [out], name)
        elif weights.kind == "int8":
            self.add("DynamicQuantizeMatMul", [x, *arrays], [out], name, microsoft=True)
        else:  # accuracy level 4: int8 products of the 4-bit blocks (see onnx.int8_products)
            self.add("MatMulNBits", [x, *arrays], [out], name, microsoft=True, **{**weights.attrs, "accuracy_level": 4})
        return out


def build(weights: DecoderWeights, config: TextConfig) -> onnx.ModelProto:
    """The fused decoder: inputs_embeds (1, seq, hidden), seqlens_k int32 (1,) = tokens so far - 1,
    total_sequence_length int32 scalar, and one past buffer per cache tensor (1, kv_heads, capacity,
    head_dim) that GroupQueryAttention writes the new positions into (bind present.* to the same memory).
    Output: logits of the last position only, (1, 1, vocab): the loop never reads the others, and the
    prefill skips a (prompt x vocabulary) matrix product."""
    import numpy as np
    from onnx import TensorProto, helper

    g = _Graph()
    inverse = 1.0 / (config.rope_theta ** (np.arange(0, config.head_dim, 2, dtype=np.float64) / config.head_dim))
    angles = np.outer(np.arange(config.max_positions, dtype=np.float64), inverse)
    cos = g.constant("cos_cache", np.cos(angles).astype(np.float32))
    sin = g.constant("sin_cache", np.sin(angles).astype(np.float32))
    norm = {key: g.constant(f"norm.{key}", value.astype(np.float32)) for key, value in weights.norms.items()}
    eps = config.eps

    hidden = g.add("SimplifiedLayerNormalization", ["inputs_embeds", norm["0.input"]], ["0/ln_in"], "0/ln_in",
                   epsilon=eps, axis=-1)[0]
    residual = "inputs_embeds"
    cache_inputs, cache_outputs = [], []
    for i in range(config.layers):
        lin = {p: weights.linears[f"{i}.{p}"] for _, names in PROJECTIONS for p in names}
        qkv = g.linear(hidden, packed([lin["q_proj"], lin["k_proj"], lin["v_proj"]]), f"{i}/qkv")
        past = [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        present = [f"present.{i}.key", f"present.{i}.value"]
        cache_inputs += past
        cache_outputs += present
        attention = g.add("GroupQueryAttention", [qkv, "", "", *past, "seqlens_k", "total_sequence_length", cos, sin],
                          [f"{i}/attn", *present], f"{i}/attn", microsoft=True, num_heads=config.heads,
                          kv_num_heads=config.kv_heads, do_rotary=1, rotary_interleaved=0)[0]
        projected = g.linear(attention, lin["o_proj"], f"{i}/o_proj")
        hidden, _, _, residual = g.add("SkipSimplifiedLayerNormalization", [projected, residual, norm[f"{i}.post"]],
                                       [f"{i}/ln_post", "", "", f"{i}/res_attn"], f"{i}/ln_post", microsoft=True,
                                       epsilon=eps)
        gate_up = g.linear(hidden, packed([lin["gate_proj"], lin["up_proj"]]), f"{i}/gate_up")
        gate, up = g.add("Split", [gate_up], [f"{i}/gate", f"{i}/up"], f"{i}/split", axis=-1, num_outputs=2)
        # SiLU(x) = x * sigmoid(x): QuickGelu with alpha 1, one kernel instead of two
        silu = g.add("QuickGelu", [gate], [f"{i}/silu"], f"{i}/silu", microsoft=True, alpha=1.0)[0]
        product = g.add("Mul", [silu, up], [f"{i}/act"], f"{i}/act")[0]
        down = g.linear(product, lin["down_proj"], f"{i}/down_proj")
        after = norm[f"{i + 1}.input"] if i + 1 < config.layers else norm["final"]
        hidden, _, _, residual = g.add("SkipSimplifiedLayerNormalization", [down, residual, after],
                                       [f"{i}/ln_next", "", "", f"{i}/res_mlp"], f"{i}/ln_next", microsoft=True,
                                       epsilon=eps)
    starts, ends, axes = (g.constant(n, np.array([v], np.int64)) for n, v in
                          (("last.start", -1), ("last.end", np.iinfo(np.int64).max), ("last.axis", 1)))
    last = g.add("Slice", [hidden, starts, ends, axes], ["last"], "last")[0]
    g.linear(last, weights.linears["lm_head"], "lm_head", out="logits")

    cache_shape = [1, config.kv_heads, "capacity", config.head_dim]
    inputs = [helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, [1, "sequence", config.hidden]),
              helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
              helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
              *(helper.make_tensor_value_info(n, TensorProto.FLOAT, cache_shape) for n in cache_inputs)]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, weights.linears["lm_head"].columns]),
               *(helper.make_tensor_value_info(n, TensorProto.FLOAT, cache_shape) for n in cache_outputs)]
    graph = helper.make_graph(g.nodes, "fused_decoder", inputs, outputs, g.initializers)
    # IR 9 / opset 21: what onnxruntime releases from 1.20 on load (the onnx package may write newer).
    return helper.make_model(graph, ir_version=9, producer_name="describe-screen",
                             opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])


def derive(source: Path, config: dict[str, Any], target: Path) -> bool:
    """Write the fused copy of the decoder graph `source` to `target`; False (and nothing written) when
    the model is not a plain llama or the graph's weights cannot all be found."""
    import onnx

    shape = text_config(config)
    if shape is None:
        return False
    try:
        weights = read_weights(onnx.load(str(source)), shape)
    except ValueError:
        return False
    model = build(weights, shape)
    large = model.ByteSize() > 1_800_000_000  # protobuf's 2 GB limit: weights go to a side file
    onnx.save_model(model, str(target), save_as_external_data=large, all_tensors_to_one_file=True,
                    location=target.name + ".data")
    return True


class Cache:
    """The key/value buffers of a fused decoder: bound as past and present at once, so each step writes
    only its new positions; when full, the buffers are replaced by ones CHUNK positions longer (a copy
    every CHUNK tokens, never per step). One I/O binding serves every step: only the new embeddings and
    the two lengths are bound again, and the logits land in a buffer of ours."""

    def __init__(self, runner: BoundRunner, expected: int = 0) -> None:
        import numpy as np

        self.runner = runner
        self.expected = expected  # positions the caller expects to add after the prompt
        self.names = [n for n in runner.input_shapes if n.startswith("past_key_values.")]
        self.capacity = 0
        self.block: np.ndarray | None = None  # every cache tensor, one after another
        self.length = 0
        vocab = runner.session.get_outputs()[0].shape[-1]
        self.logits = np.empty((1, 1, vocab), np.float32)
        self.binding: Any = None

    def ensure(self, length: int) -> None:
        """Room for `length` positions: the first buffers hold the prompt and the expected answer."""
        import numpy as np
        import onnxruntime as ort

        if length <= self.capacity:
            return
        wanted = length + (self.expected if not self.capacity else 0)
        capacity = -(-max(wanted, CHUNK) // CHUNK) * CHUNK
        _, heads, _, size = self.runner.input_shapes[self.names[0]]
        # One allocation for all of them: large enough to be mapped, so freeing it at the end of an answer
        # gives the memory back to the system (many small ones would stay in the process's heap).
        block = np.zeros((len(self.names), 1, heads, capacity, size), np.float32)
        if self.block is not None:
            block[:, :, :, :self.capacity] = self.block
        binding = self.runner.session.io_binding()
        for name, array in zip(self.names, block, strict=True):
            value = ort.OrtValue.ortvalue_from_numpy(array)  # shares the block's memory
            binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_output(name.replace("past_key_values.", "present."), value)
        binding.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(self.logits))
        self.block, self.capacity, self.binding = block, capacity, binding

    def step(self, embeds: np.ndarray) -> np.ndarray:
        """Run the decoder on `embeds` (1, n, hidden) after the positions already cached; logits (vocab,).
        A long prompt goes in slices of PREFILL positions: the activations of one slice, not of the
        whole prompt, set the memory the session needs (a screen of text is ~900 tokens), and that memory
        goes back to the system after the prompt, so it does not sit beside the next image's encoding."""
        import numpy as np

        self.ensure(self.length + embeds.shape[1])
        release = self.runner.releasing() if embeds.shape[1] > 1 else None
        for start in range(0, embeds.shape[1], PREFILL):
            part = np.ascontiguousarray(embeds[:, start:start + PREFILL], dtype=np.float32)
            self.length += part.shape[1]
            seen, total = np.array([self.length - 1], np.int32), np.array(self.length, np.int32)
            self.binding.bind_cpu_input("inputs_embeds", part)
            self.binding.bind_cpu_input("seqlens_k", seen)
            self.binding.bind_cpu_input("total_sequence_length", total)
            self.runner.execute(self.binding, release if start + PREFILL >= embeds.shape[1] else None)
        return self.logits[0, -1].copy()
