"""MatMulNBits' 4-bit block-32 weights in the layout of our own kernel (native/q4.h), the same numbers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.i18n import _
from describe_screen.vlm import onnx as sessions

if TYPE_CHECKING:
    import numpy as np
    import onnx

BLOCK = 32
GROUP = 16  # columns per group: one 512-bit register of int32 sums


def pack(b: np.ndarray, scales: np.ndarray, zeros: np.ndarray | None, n: int, k: int):
    """(w, s, z) for native/q4.h from MatMulNBits' B [n, k/32, 16] (two weights a byte, low nibble first),
    scales [n * k/32] and zero points (n rows of k/32 nibbles, low first, rows padded to a byte; None: 8)."""
    import numpy as np

    blocks, groups = k // BLOCK, n // GROUP
    weights = np.empty((n, blocks, BLOCK), np.uint8)
    weights[:, :, 0::2] = b.reshape(n, blocks, BLOCK // 2) & 15
    weights[:, :, 1::2] = b.reshape(n, blocks, BLOCK // 2) >> 4
    # [g, lane, b, c, half, i] -> [g, b, c, lane, i] with the two halves as low and high nibbles
    quads = weights.reshape(groups, GROUP, blocks, 4, 2, 4).transpose(0, 2, 3, 1, 4, 5)
    w = (quads[..., 0, :] | (quads[..., 1, :] << 4)).astype(np.uint8).reshape(groups, blocks, 256)
    s = np.ascontiguousarray(scales.reshape(groups, GROUP, blocks).transpose(0, 2, 1), np.float32)
    if zeros is None:
        z = np.full((groups, blocks, GROUP), 8, np.uint8)
    else:
        row = zeros.reshape(n, -1)
        nibbles = np.stack([row & 15, row >> 4], axis=-1).reshape(n, -1)[:, :blocks]
        z = np.ascontiguousarray(nibbles.reshape(groups, GROUP, blocks).transpose(0, 2, 1), np.uint8)
    return w, s, z


DOMAIN = "describe_screen"  # our custom operators' domain (native/ort_op.c registers Q4MatMul in it)
ALIGN = 64


def own_products(model: onnx.ModelProto, folder: Path, side: Path) -> int:
    """Make each 4-bit block-32 MatMulNBits of `model` (loaded without its weights from `folder`) our Q4MatMul,
    its weights packed into `side` (a new file beside the copy; the published ones are read, never changed).
    A bias becomes an Add after it. Nodes our kernel cannot take (other bits or block sizes, g_idx, widths off
    its grid, weights computed in the graph) stay as they are. The number of nodes changed."""
    import onnx
    from onnx import helper

    initializers = {i.name: i for i in model.graph.initializer}
    changed, added, replaced = [], {}, set()
    with side.open("wb") as out:
        for index, node in enumerate(model.graph.node):
            if node.op_type != "MatMulNBits" or node.domain != "com.microsoft":
                continue
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            k, n = attributes["K"], attributes["N"]
            inputs = list(node.input)
            if (attributes.get("bits", 4) != 4 or attributes.get("block_size") != BLOCK or k % BLOCK or n % GROUP
                    or any(inputs[4:5]) or not all(name in initializers for name in inputs[1:4] if name)
                    or initializers[inputs[1]].data_type != onnx.TensorProto.UINT8
                    or tuple(initializers[inputs[1]].dims) != (n, k // BLOCK, BLOCK // 2)
                    or initializers[inputs[2]].data_type != onnx.TensorProto.FLOAT
                    or (len(inputs) > 3 and inputs[3] and initializers[inputs[3]].data_type != onnx.TensorProto.UINT8)):
                continue
            arrays = [_values(initializers[name], folder) for name in inputs[1:4] if name]
            packed = pack(arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None, n, k)
            names = [f"{node.name or node.output[0]}/q4.{suffix}" for suffix in ("w", "s", "z")]
            model.graph.initializer.extend(sessions.append_weight(out, side.name, name, array, ALIGN)
                                           for name, array in zip(names, packed, strict=True))
            bias = inputs[5] if len(inputs) > 5 and inputs[5] else None
            product = f"{node.output[0]}/unbiased" if bias else node.output[0]
            own = helper.make_node("Q4MatMul", [inputs[0], *names], [product], name=node.name, domain=DOMAIN, K=k, N=n)
            if bias:  # the bias as an Add after it (the vision encoder's products have one)
                added[index] = helper.make_node("Add", [product, bias], [node.output[0]], name=f"{node.name}/bias")
            replaced.update(inputs[1:4])
            node.CopyFrom(own)
            changed.append(node)
    if not changed:
        side.unlink()
        return 0
    if added:
        nodes = [step for index, node in enumerate(model.graph.node) for step in (node, added.get(index))
                 if step is not None]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    used = _inputs(model.graph)
    kept = [i for i in model.graph.initializer if i.name in used or i.name not in replaced]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    if DOMAIN not in {o.domain for o in model.opset_import}:
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return len(changed)


def _inputs(graph: onnx.GraphProto) -> set[str]:
    """Every name the nodes of `graph` and of its subgraphs (an If's branches) read."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else attribute.graphs:
                names |= _inputs(sub)
    return names


def _values(tensor: onnx.TensorProto, folder: Path) -> np.ndarray:
    """A weight's values, read from its file in `folder` when it is stored outside the graph (onnx's own reader
    refuses a weights file with two hard links, as the bundle's copies have: onnx.save_copy)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return numpy_helper.to_array(tensor)
    where = {entry.key: entry.value for entry in tensor.external_data}
    location = Path(where["location"])
    if location.is_absolute() or ".." in location.parts:
        raise ValueError(_("the weights of {name} are outside the model's folder: {location}", name=tensor.name,
                           location=location))
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
    count = int(np.prod(tensor.dims, dtype=np.int64))
    values = np.fromfile(folder / location, dtype, count, offset=int(where.get("offset", 0)))
    if values.size != count:
        raise ValueError(_("the weights file {location} is shorter than its graph says", location=location))
    return values.reshape(tuple(tensor.dims))
