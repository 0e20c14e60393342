"""The CPU copy of a decoder built from onnxruntime's linear-attention operators (Qwen3.5's -OPT files).

The published graphs are written for every provider; on the CPU two of their operators cost more than
the work they do (onnxruntime 1.31's kernels, measured in its profiler on the real 0.8B's shapes):
- MatMulNBits with accuracy level 0 multiplies 4-bit blocks in float: level 4 multiplies them in int8
  (onnx.set_int8_products);
- GatedRMSNorm is a scalar loop that calls the logistic function once per element: the same steps as
  whole-tensor operators (the gate's SiLU as QuickGelu, MLAS's vectorised logistic) compute the same
  values bit for bit, a 123-token prompt's 18 norms in about 25 ms instead of 70 (a decode step's few
  rows cost a little more through those small nodes; an If sending them to the kernel cost more still).
CausalConvWithState's channels-last form would spare the two transposes around it, but its strided
reads cost more than they do (80 ms against 46 + 23 for a prompt), so it stays as published; and the
packed q/k/v/gate and gate/up products cut into one MatMulNBits per part (no Split copies, the same
values) made a prompt slower (0.91x end to end, interleaved), so they stay packed.

Where this computer can build our own 4-bit kernel (vlm/kernels: a C compiler, and a CPU with AVX-512 VNNI),
the 4-bit products become our Q4MatMul (q4pack), whose weights sit in a file of the copy's own: MLAS's int8
kernel for these products is bound by its arithmetic on such a CPU (a decode step's 97 products about 31 ms
for the 563 MB it reads, 17.5 GB/s), ours by memory (about 24 ms, and 1.4-1.5 times MLAS for a prompt's).

`derive(source, target)` writes that copy from the graph (the weights it does not change stay in the
published weights files: onnx.save_copy); Bundle.derived keeps it beside the bundle under the source's
checksums and recipe(), so the downloaded files are never changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.vlm import kernels, q4pack
from describe_screen.vlm import onnx as sessions

if TYPE_CHECKING:
    import onnx

RECIPE = 4  # raise when derive() changes: copies made by an older version are then made again
OWN_KERNEL = 1000  # added to the recipe when our kernel is used, so gaining or losing it makes the copy again
MS = "com.microsoft"


def recipe() -> int:
    """The recipe of the copy derive() makes on this computer now (with our kernel, or without)."""
    return RECIPE + (OWN_KERNEL if own_kernel() else 0)


def own_kernel() -> bool:
    """Whether our 4-bit kernel can run here, built (once) if need be: a compiler and its fast path."""
    return (library := kernels.library()) is not None and kernels.isa(library) != "scalar"


def derive(source: Path, target: Path) -> bool:
    """Write the CPU copy of graph `source` to `target`; False, and nothing written, when nothing changes."""
    rewrites = [sessions.set_int8_products, vectorised_gated_norms]
    if own_kernel():  # after set_int8_products: the products it cannot take keep int8 products
        side = target.with_name(f"{target.name}.data")
        rewrites.append(lambda model: q4pack.own_products(model, source.parent, side))
    return sessions.rewritten_copy(source, target, *rewrites)


def _attributes(node: onnx.NodeProto) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _replace(model: onnx.ModelProto, old: onnx.NodeProto, new: list[onnx.NodeProto]) -> None:
    """Put `new` where `old` was (the graph stays in topological order when `new` reads only what `old` read)."""
    nodes = model.graph.node
    index = next(i for i, n in enumerate(nodes) if n == old)
    del nodes[index]
    for offset, node in enumerate(new):
        nodes.insert(index + offset, node)


def vectorised_gated_norms(model: onnx.ModelProto) -> int:
    """Rewrite each GatedRMSNorm(x, scale, gate) in whole-tensor operators that round as its kernel does, so
    the values are bit for bit the same: per row of len(scale), the squares summed in order (CumSum, its last
    column: the kernel's loop), 1 / sqrt(sum / n + epsilon), x times that times scale, times SiLU(gate)
    (QuickGelu, alpha 1: the same MLAS logistic) or sigmoid(gate). SimplifiedLayerNormalization would be
    fewer nodes, but it sums in another order and divides where the kernel multiplies: a last-bit
    difference that the int8 products downstream can turn into another token. The number rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    count = 0
    for node in [n for n in model.graph.node if n.op_type == "GatedRMSNorm" and n.domain == MS]:
        x, scale, gate = node.input
        if scale not in initializers or initializers[scale].data_type != 1:  # float32 only, as the kernel computes
            continue
        width = int(np.prod(initializers[scale].dims))
        attributes = _attributes(node)
        activation = attributes.get("activation", b"silu")
        activation = activation.decode() if isinstance(activation, bytes) else activation
        name = f"{node.name or node.output[0]}/vectorised"

        def const(suffix: str, value: np.ndarray, name: str = name) -> str:
            model.graph.initializer.append(numpy_helper.from_array(value, f"{name}/{suffix}"))
            return f"{name}/{suffix}"

        axis = const("axis", np.array([-1], np.int64))

        def op(kind: str, inputs: list[str], out: str, **attrs: float) -> onnx.NodeProto:
            return helper.make_node(kind, inputs, [out], domain=MS if kind == "QuickGelu" else "", **attrs)

        steps = [op("Shape", [x], f"{name}/shape"), op("Reshape", [x, const("rows", np.array([-1, width], np.int64))],
                                                          f"{name}/x")]
        steps += [op("Mul", [f"{name}/x", f"{name}/x"], f"{name}/squares"),
                  op("CumSum", [f"{name}/squares", axis], f"{name}/sums"),
                  op("Slice", [f"{name}/sums", axis, const("end", np.array([2**62], np.int64)), axis], f"{name}/sum"),
                  op("Div", [f"{name}/sum", const("width", np.array(width, np.float32))], f"{name}/mean"),
                  op("Add", [f"{name}/mean", const("epsilon", np.array(attributes.get("epsilon", 1e-5), np.float32))],
                     f"{name}/variance"),
                  op("Sqrt", [f"{name}/variance"], f"{name}/rms"),
                  op("Reciprocal", [f"{name}/rms"], f"{name}/inverse"),
                  op("Mul", [f"{name}/x", f"{name}/inverse"], f"{name}/normed"),
                  op("Mul", [f"{name}/normed", scale], f"{name}/scaled"),
                  op("Reshape", [f"{name}/scaled", f"{name}/shape"], f"{name}/norm"),
                  op("QuickGelu", [gate], f"{name}/gate", alpha=1.0) if activation in ("silu", "swish")
                  else op("Sigmoid", [gate], f"{name}/gate"),
                  op("Mul", [f"{name}/norm", f"{name}/gate"], node.output[0])]
        _replace(model, node, steps)
        count += 1
    return count
