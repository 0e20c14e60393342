"""A llama-style text decoder rebuilt from onnxruntime's fused operators, and the loop state that runs it.

The decoder graphs we export and the published ones are exports of the PyTorch model: about 3,000 small
nodes per token after onnxruntime's own optimisation (rotary embedding, repeat_kv, layer norms and masks
spelt out op by op), and a cache that is copied into a new, longer tensor at every step. This module reads
the weights out of such a graph by its structure (which operator reads which tensor, not what an
exporter named them: see `read_weights`; tested on our TorchScript export and on torch's dynamo export)
and writes the same network as nine nodes per layer: two
SkipSimplifiedLayerNormalization, one packed q/k/v projection, GroupQueryAttention (rotary embedding
inside), one packed gate/up projection, QuickGelu as SiLU. The key/value cache becomes one buffer per
layer that the session writes in place (past and present are the same memory), grown by doubling when
full.

Each projection is carried over in the form the source stores it (float MatMul, int8 weights with
per-column scales, or 4-bit MatMulNBits blocks), so the derived graph computes what the source computes
with the same weights (4-bit blocks multiply in int8, see `_Graph.linear`); the downloaded files are
never changed (`Bundle.derived` keeps the copy, checked by its checksum at every load).
Only what the CPU provider runs in float32 is rebuilt: fp16 graphs and CUDA sessions keep the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.i18n import _

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
# Operators a projection's input goes into (the quantisers' forms of x @ W); attention's products are MatMuls too.
PROJECTION_OPS = ("MatMul", "MatMulNBits", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
                  "DynamicQuantizeLinear")
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


def unsupported(config: dict[str, Any]) -> str:
    """Why config.json's text model is not the plain llama (SmolLM2) this module rebuilds: biases, an
    activation other than SiLU, a scaled rotary embedding, or a head size GroupQueryAttention's CPU kernel
    does not take (not a multiple of 16). "" when it is one."""
    text = config.get("text_config", config)
    rope = text.get("rope_parameters") or {}
    scaling = text.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", "default")
    rope_type = rope_type if rope_type != "default" else scaling.get("rope_type", scaling.get("type", "default"))
    heads = max(int(text.get("num_attention_heads", 1)), 1)
    head_dim = int(text.get("head_dim") or int(text.get("hidden_size", 0)) // heads)
    if text.get("model_type") != "llama":
        return _("its text model is {model!r}, not a llama", model=text.get("model_type"))
    if text.get("attention_bias") or text.get("mlp_bias"):
        return _("its text model has biases")
    if text.get("hidden_act", "silu") != "silu":
        return _("its text model's activation is {activation}, not SiLU", activation=text.get("hidden_act"))
    if rope_type != "default":
        return _("its rotary embedding is scaled ({kind})", kind=rope_type)
    if head_dim % 16:
        return _("its attention heads are {width} wide, not a multiple of 16", width=head_dim)
    return ""


def text_config(config: dict[str, Any]) -> TextConfig | None:
    """The text model's shape when it is a plain llama (see `unsupported`); None otherwise: the source
    graph then runs as it is."""
    if unsupported(config):
        return None
    text = config.get("text_config", config)
    rope = text.get("rope_parameters") or {}
    heads = int(text["num_attention_heads"])
    hidden = int(text["hidden_size"])
    return TextConfig(layers=int(text["num_hidden_layers"]), heads=heads,
                      kv_heads=int(text.get("num_key_value_heads") or heads),
                      head_dim=int(text.get("head_dim") or hidden // heads), hidden=hidden,
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
        raise ValueError(_("mixed projection forms {kinds}", kinds=sorted(kinds)))
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
        raise ValueError(_("4-bit projections with different block layouts"))
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
    """Find every projection and norm weight by the graph's data flow, whatever the exporter named them.

    From the decoder's input on, layer by layer: the input norm feeds three projections (q, k and v, told
    apart by where they enter attention); the projection whose output is added to the layer's input is
    o; the post-attention norm feeds the gate/up pair (gate: the one a sigmoid reads); the projection
    whose output is added next is down, which must read SiLU(gate) * up; after the last layer, the final
    norm feeds lm_head. A norm is SimplifiedLayerNormalization or spelt out (Pow, ReduceMean, Add, Sqrt,
    Reciprocal or Div, Mul); a projection is a float MatMul, DynamicQuantizeLinear + MatMulInteger +
    scale Mul, DynamicQuantizeMatMul or MatMulNBits (see _Flow.projection). Raises ValueError saying what
    was not found."""
    flow = _Flow(model.graph)
    projections = [found for node in model.graph.node if (found := flow.projection(node))]
    groups: dict[str, list[_Projection]] = {}
    for projection in projections:
        groups.setdefault(flow.base(projection.input), []).append(projection)
    normed = {key: flow.norm(key) for key in groups}
    norms: dict[str, np.ndarray] = {}
    linears: dict[str, Linear] = {}

    def group(stream: str, size: int, key: str, what: str) -> list[_Projection]:
        """The `size` projections reading norm(stream); that norm's weight goes into `norms[key]`."""
        for source, members in groups.items():
            if (norm := normed[source]) and norm[1] == stream and len(members) == size:
                norms[key] = norm[0]
                return members
        raise ValueError(_("{what} was not found", what=what))

    def added(stream: str, key: str, what: str) -> tuple[_Projection, str]:
        """The projection whose output is added to `stream`, and the sum (the next residual stream)."""
        for projection in projections:
            if total := flow.sum_of(stream, projection.output):
                linears[key] = projection.weights
                return projection, total
        raise ValueError(_("{what} was not found", what=what))

    # the residual stream starts where the first norm (in the graph's order) that feeds projections reads
    stream = next((norm[1] for norm in normed.values() if norm), "")
    for i in range(config.layers):
        for name, projection in zip(("q_proj", "k_proj", "v_proj"), flow.by_attention_role(group(
                stream, 3, f"{i}.input", _("layer {i}'s input norm with its q, k and v projections", i=i))),
                strict=True):
            linears[f"{i}.{name}"] = projection.weights
        stream = added(stream, f"{i}.o_proj", _("layer {i}'s attention output projection", i=i))[1]
        gate_up = group(stream, 2, f"{i}.post", _("layer {i}'s second norm with its gate and up projections", i=i))
        gates = [p for p in gate_up if flow.read_by(p.output, ("Sigmoid", "QuickGelu"))]
        if len(gates) != 1:
            raise ValueError(_("layer {i}'s gate projection (the one SiLU reads) was not found", i=i))
        gate, up = gates[0], next(p for p in gate_up if p is not gates[0])
        linears[f"{i}.gate_proj"], linears[f"{i}.up_proj"] = gate.weights, up.weights
        down, stream = added(stream, f"{i}.down_proj", _("layer {i}'s down projection", i=i))
        if not flow.product_of(down.input, up.output):
            raise ValueError(_("layer {i}'s down projection does not read SiLU(gate) * up", i=i))
    [head] = group(stream, 1, "final", _("the final norm with the output projection after {layers} layers",
                                         layers=config.layers))
    linears["lm_head"] = head.weights
    _check_shapes(linears, norms, config)
    return DecoderWeights(norms, linears)


def _check_shapes(linears: dict[str, Linear], norms: dict[str, np.ndarray], config: TextConfig) -> None:
    """The weights found have the shapes config.json gives the model."""
    query, key_value = config.heads * config.head_dim, config.kv_heads * config.head_dim
    inner = linears["0.gate_proj"].columns
    for i in range(config.layers):
        for name, columns in (("q_proj", query), ("k_proj", key_value), ("v_proj", key_value),
                              ("o_proj", config.hidden), ("gate_proj", inner), ("up_proj", inner),
                              ("down_proj", config.hidden)):
            if linears[f"{i}.{name}"].columns != columns:
                raise ValueError(_("layer {i}'s {name} has {columns} outputs where config.json implies {implied}",
                                   i=i, name=name, columns=linears[f"{i}.{name}"].columns, implied=columns))
    if bad := next((key for key, weight in norms.items() if weight.shape != (config.hidden,)), None):
        raise ValueError(_("the norm {name} has {shape} weights, not {hidden}", name=bad, shape=norms[bad].shape,
                           hidden=config.hidden))


def _int8(weight: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> Linear:
    import numpy as np

    return Linear("int8", [weight, scale.astype(np.float32), zero.astype(weight.dtype)])


@dataclass
class _Projection:
    """One projection found in a source graph: the tensor it reads, the one it writes, its weights."""

    input: str
    output: str
    weights: Linear


class _Flow:
    """Who writes and who reads each tensor of a graph, and the value of each tensor made of constants only."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.producer = {name: node for node in graph.node for name in node.output if name}
        self.readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        for node in graph.node:
            for index, name in enumerate(node.input):
                self.readers.setdefault(name, []).append((node, index))
        self.initializers = {t.name: t for t in graph.initializer}
        self.sums = {frozenset(self.base(x) for x in node.input): node.output[0]
                     for node in graph.node if node.op_type == "Add" and len(node.input) == 2}
        self._constants: dict[str, np.ndarray | None] = {}

    def made_by(self, name: str) -> onnx.NodeProto | None:
        return self.producer.get(self.base(name))

    def base(self, name: str) -> str:
        """The tensor `name` is a copy of: through Cast and Identity (float32 casts of float32 tensors,
        float16 graphs' casts at the edges)."""
        while (node := self.producer.get(name)) is not None and node.op_type in ("Cast", "Identity"):
            name = node.input[0]
        return name

    def constant(self, name: str) -> np.ndarray | None:
        """The value of a tensor computed from constants alone (initializers, Constant nodes, and
        Identity, Cast or Transpose of them); None for anything computed from the inputs."""
        if name not in self._constants:
            self._constants[name] = self._constant(name)
        return self._constants[name]

    def _constant(self, name: str) -> np.ndarray | None:
        from onnx import helper, numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is None:
            return None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            return numpy_helper.to_array(attrs["value"]) if "value" in attrs else None
        if node.op_type not in ("Identity", "Cast", "Transpose") or (value := self.constant(node.input[0])) is None:
            return None
        if node.op_type == "Cast":
            return value.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
        if node.op_type == "Transpose":
            return value.transpose(attrs.get("perm") or None)
        return value

    def projection(self, node: onnx.NodeProto) -> _Projection | None:
        """`node` as a projection x @ W with constant W in any of the forms the quantisers write, else None."""
        import numpy as np
        from onnx import helper

        op = node.op_type
        if op == "MatMul":
            weight = self.constant(node.input[1])
            if weight is None or weight.ndim != 2 or self.constant(node.input[0]) is not None:
                return None
            return _Projection(node.input[0], node.output[0], Linear("float", [weight.astype(np.float32)]))
        if op == "MatMulNBits":
            if len(node.input) > 4 and any(node.input[4:]):
                raise ValueError(_("a 4-bit projection has group indices or a bias"))
            arrays = [self.constant(name) for name in node.input[1:4] if name]
            if any(a is None for a in arrays):
                raise ValueError(_("a 4-bit projection's weights are not constants"))
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            # the accuracy level is not carried over: the fused graph sets its own (see _Graph.linear)
            return _Projection(node.input[0], node.output[0],
                               Linear("nbits", arrays, {k: int(attrs[k]) for k in ("K", "N", "bits", "block_size")}))
        if op == "MatMulInteger":
            return self._integer_projection(node)
        # onnxruntime's fusions of that pattern: DynamicQuantizeMatMul(x, W_q, W_scale, W_zero, bias) and
        # MatMulIntegerToFloat(x_q, W_q, x_scale, W_scale, x_zero, W_zero, bias) after a DynamicQuantizeLinear
        fusions = {"DynamicQuantizeMatMul": (2, 3, 4), "MatMulIntegerToFloat": (3, 5, 6)}
        if op not in fusions:
            return None
        scale_at, zero_at, bias_at = fusions[op]
        x = node.input[0]
        if op == "MatMulIntegerToFloat":
            quantize = self.producer.get(x)
            if quantize is None or quantize.op_type != "DynamicQuantizeLinear":
                raise ValueError(_("an int8 projection does not quantise its input dynamically"))
            x = quantize.input[0]
        inputs = [*node.input, "", "", "", ""]
        weight, scale = self.constant(inputs[1]), self.constant(inputs[scale_at])
        zero = self.constant(inputs[zero_at]) if inputs[zero_at] else np.zeros((), np.int8)
        if inputs[bias_at] or weight is None or scale is None or zero is None:
            raise ValueError(_("an int8 projection has a bias or weights that are not constants"))
        return _Projection(x, node.output[0], _int8(weight, scale, zero))

    def _integer_projection(self, node: onnx.NodeProto) -> _Projection:
        """DynamicQuantizeLinear(x) -> (x_q, x_scale, x_zero); MatMulInteger(x_q, W_q, x_zero, W_zero) ->
        Cast -> Mul(., x_scale * W_scale): what onnxruntime's quantize_dynamic writes for a MatMul."""
        import numpy as np

        quantize = self.producer.get(node.input[0])
        weight = self.constant(node.input[1])
        if quantize is None or quantize.op_type != "DynamicQuantizeLinear" or weight is None:
            raise ValueError(_("an integer projection does not quantise its input dynamically"))
        zero = self.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else np.zeros((), weight.dtype)
        casts = [reader for reader, _ in self.readers.get(node.output[0], []) if reader.op_type == "Cast"]
        for cast in casts:
            for scaled, index in self.readers.get(cast.output[0], []):
                factor = self.producer.get(scaled.input[1 - index]) if scaled.op_type == "Mul" else None
                if factor is None or factor.op_type != "Mul" or quantize.output[1] not in factor.input:
                    continue
                scale = self.constant(next(n for n in factor.input if n != quantize.output[1]))
                if scale is not None and zero is not None:
                    return _Projection(quantize.input[0], scaled.output[0], _int8(weight, scale, zero))
        raise ValueError(_("an int8 projection's weight scale was not found"))

    def norm(self, name: str) -> tuple[np.ndarray, str] | None:
        """(weight, x) when `name` is RMSNorm(x) * weight (a Slice of it too: lm_head may read only the
        last position), else None."""
        node = self.made_by(name)
        if node is not None and node.op_type in ("Slice", "Gather"):
            node = self.made_by(node.input[0])
        if node is None:
            return None
        if node.op_type == "SimplifiedLayerNormalization":
            weight = self.constant(node.input[1])
            return (weight, self.base(node.input[0])) if weight is not None else None
        if node.op_type != "Mul":
            return None
        for weight_name, normed in (node.input, reversed(node.input)):
            weight = self.constant(weight_name)
            if weight is not None and weight.ndim == 1 and (x := self.rms_input(normed)):
                return weight, x
        return None

    def rms_input(self, name: str) -> str | None:
        """x when `name` is x / sqrt(mean(x²) + eps), spelt out as Div(x, root) or Mul(x, 1 / root)."""
        node = self.made_by(name)
        if node is None or node.op_type not in ("Mul", "Div"):
            return None
        pairs = [tuple(node.input)] if node.op_type == "Div" else [tuple(node.input), tuple(reversed(node.input))]
        for x, root in pairs:
            if node.op_type == "Mul":
                inverse = self.made_by(root)
                if inverse is not None and inverse.op_type == "Reciprocal":
                    root = inverse.input[0]
                elif inverse is not None and inverse.op_type == "Div" and self.constant(inverse.input[0]) is not None:
                    root = inverse.input[1]
                else:
                    continue
            if self.root_mean_square_of(root) == self.base(x):
                return self.base(x)
        return None

    def root_mean_square_of(self, name: str) -> str | None:
        """x when `name` is Sqrt(ReduceMean(x²) + eps), else None."""
        steps = [("Sqrt", 0), ("Add", None), ("ReduceMean", 0)]
        for op, index in steps:
            node = self.made_by(name)
            if node is None or node.op_type != op:
                return None
            if index is None:  # the one input that is not the constant eps
                inputs = [n for n in node.input if self.constant(n) is None]
                if len(inputs) != 1:
                    return None
                name = inputs[0]
            else:
                name = node.input[index]
        square = self.made_by(name)
        if square is not None and square.op_type == "Pow" and (power := self.constant(square.input[1])) is not None \
                and power.size == 1 and float(power) == 2.0:
            return self.base(square.input[0])
        if square is not None and square.op_type == "Mul" and self.base(square.input[0]) == self.base(square.input[1]):
            return self.base(square.input[0])
        return None

    def sum_of(self, a: str, b: str) -> str | None:
        """The output of an Add of `a` and `b` (as copies through Cast), if the graph has one."""
        return self.sums.get(frozenset((self.base(a), self.base(b))))

    def read_by(self, name: str, ops: tuple[str, ...]) -> bool:
        """Whether a node of one of `ops` reads `name` (or a Cast of it)."""
        for node, _slot in self.readers.get(name, []):
            if node.op_type in ops or (node.op_type in ("Cast", "Identity") and self.read_by(node.output[0], ops)):
                return True
        return False

    def product_of(self, name: str, factor: str) -> bool:
        """Whether `name` is a Mul one of whose factors is `factor` (through Cast)."""
        node = self.made_by(name)
        return node is not None and node.op_type == "Mul" and self.base(factor) in {self.base(n) for n in node.input}

    def by_attention_role(self, projections: list[_Projection]) -> list[_Projection]:
        """Three projections of one normed input as [q, k, v]: q is the first factor of the attention
        scores (the product before the softmax), k the second, v the second factor of the product after
        the softmax; or inputs 0, 1, 2 of a fused attention operator."""
        roles: dict[int, _Projection] = {}
        for projection in projections:
            found = self.attention_entries(projection.output)
            if len(found) != 1:
                raise ValueError(_("the q, k and v projections do not each enter attention in one place"))
            roles[found.pop()] = projection
        if sorted(roles) != [0, 1, 2]:
            raise ValueError(_("the q, k and v projections could not be told apart"))
        return [roles[0], roles[1], roles[2]]

    def attention_entries(self, name: str) -> set[int]:
        """Where the values of `name` enter attention: 0 for the scores' first factor (q), 1 for their
        second (k), 2 for the weighted sum (v); the scores are the product whose output reaches a Softmax."""
        entries: set[int] = set()
        for node, index in self.downstream(name):
            if node.op_type in ("GroupQueryAttention", "MultiHeadAttention") and index < 3:
                entries.add(index)
            elif node.op_type in ("MatMul", "FusedMatMul") and self.constant(node.input[1]) is None:
                scores = any(later.op_type == "Softmax" for later, _ in self.downstream(node.output[0]))
                entries.add(index if scores else 2 if index == 1 else -1)
        return entries

    def downstream(self, name: str) -> Iterator[tuple[onnx.NodeProto, int]]:
        """Every (node, input index) the values of `name` reach, following data (not shapes) forward, up to
        and not beyond the next product (projection or attention's MatMul) or attention operator."""
        shape_inputs = ("Reshape", "Expand", "Slice", "Unsqueeze", "Squeeze", "Tile", "Gather", "Range", "Pad")
        stops = (*PROJECTION_OPS, "FusedMatMul", "GroupQueryAttention", "MultiHeadAttention")
        seen, todo = {name}, [name]
        while todo and len(seen) < 5000:
            for node, index in self.readers.get(todo.pop(), []):
                if node.op_type in ("Shape", "Size", "ConstantOfShape") or (index and node.op_type in shape_inputs):
                    continue
                yield node, index
                for out in node.output if node.op_type not in stops else ():
                    if out and out not in seen:
                        seen.add(out)
                        todo.append(out)


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
    """Write the fused copy of the decoder graph `source` to `target`. Raises ValueError saying why (in
    words for the user) when the model is not a plain llama or the graph's weights cannot all be found;
    nothing is written then."""
    import onnx

    shape = text_config(config)
    if shape is None:
        raise ValueError(unsupported(config))
    model = build(read_weights(onnx.load(str(source)), shape), shape)
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
