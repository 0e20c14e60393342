"""Write an ONNX graph node by node from weights, streaming the weights into its external data file.

For families whose published graphs use onnxruntime's fused operators (LinearAttention, GroupQueryAttention,
MatMulNBits ...), which no tracer emits: the exporter states the network directly, as onnxruntime-genai's
builder does. Weights go to `<graph>.onnx_data` as they are added, so a model larger than memory allows
twice (the real 2B in float32) is written holding one tensor at a time. `quantize` picks how projections
are stored: float32 MatMul, or 4-bit MatMulNBits blocks of 32 with float32 activations (the published q4);
`half` writes float16 weights and activations instead (the _fp16 files, for CUDA).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.vlm import onnx as sessions

if TYPE_CHECKING:
    import numpy as np

OPSET = 17
MS = "com.microsoft"
BLOCK = 32  # 4-bit block size along the input dimension, as the published q4 files
INLINE_BYTES = 1024  # smaller tensors stay inside the .onnx file, as onnx.save's own threshold
ALIGN = 4096  # weights start on page boundaries so onnxruntime can map them instead of copying


def quantize_4bit(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(packed, scales, zero_points) of a (K, N) float matrix in onnxruntime's MatMulNBits layout: per output
    column N, blocks of 32 along K, asymmetric (min/max) with packed 4-bit zero points, computed by
    onnxruntime's own MLAS routine so the numbers are exactly what its quantiser writes."""
    import numpy as np
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits

    rows, cols = weight.shape
    blocks = (rows + BLOCK - 1) // BLOCK
    packed = np.zeros((cols, blocks, BLOCK // 2), dtype=np.uint8)
    scales = np.zeros((cols, blocks), dtype=np.float32)
    zero_points = np.zeros((cols, (blocks + 1) // 2), dtype=np.uint8)
    quantize_matmul_4bits(packed, np.ascontiguousarray(weight, dtype=np.float32), scales, zero_points, BLOCK, cols,
                          rows, False)
    return packed, scales, zero_points


class GraphWriter:
    """One graph under construction: inputs, outputs, nodes and streamed initializers."""

    def __init__(self, path: Path, quantize: bool = False, half: bool = False) -> None:
        self.path = path
        self.quantize = quantize
        self.half = half
        self.float = 10 if half else 1  # onnx.TensorProto.FLOAT16 / FLOAT: the type activations have
        self.float_name = "float16" if half else "float32"
        self.data_name = path.name + "_data"
        self._data = (path.parent / self.data_name).open("wb")
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.initializers: list[Any] = []
        self._constants: dict[tuple, str] = {}
        self._counter = itertools.count(1)  # shared with branches: value names stay unique in the whole model

    # -- declarations
    def input(self, name: str, elem_type: int, shape: list[Any]) -> str:
        from onnx import helper

        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, name: str, elem_type: int, shape: list[Any]) -> None:
        from onnx import helper

        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def weight(self, name: str, array: np.ndarray, float32: bool = False) -> str:
        """An initializer; large ones are appended to the external data file right away. Float weights take
        the activations' type unless `float32` (inputs an operator wants in float32 whatever it computes in)."""
        import numpy as np
        from onnx import numpy_helper

        if self.half and array.dtype == np.float32 and not float32:
            array = array.astype(np.float16)
        array = np.ascontiguousarray(array)
        if array.nbytes <= INLINE_BYTES:
            self.initializers.append(numpy_helper.from_array(array, name))
            return name
        self.initializers.append(sessions.append_weight(self._data, self.data_name, name, array, ALIGN))
        return name

    def const(self, values: Any, dtype: str = "int64") -> str:
        """A small constant (shapes, axes, scalars) of exactly `dtype`, shared by every node that needs the same one."""
        import numpy as np

        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.weight(f"const_{len(self._constants)}", array, float32=True)
        return self._constants[key]

    def to_float(self, x: str) -> str:
        """`x` (computed in float32) in the activations' type."""
        return self.op("Cast", [x], to=self.float) if self.half else x

    # -- nodes
    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "",
           name: str = "", **attrs: Any) -> Any:
        """Add a node; returns its output name (or the list of them when it has several)."""
        from onnx import helper

        node_name = name or f"{op_type}_{next(self._counter)}"
        names = outputs if isinstance(outputs, list) else [f"{node_name}/out{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=node_name, domain=domain or None,
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return names[0] if len(names) == 1 else names

    def branch(self) -> GraphWriter:
        """A writer for the body of an If: its own nodes; its weights and constants go to this graph, where the
        body sees them from the enclosing scope."""
        child = object.__new__(GraphWriter)
        child.__dict__.update(self.__dict__)
        child.nodes = []
        return child

    def subgraph(self, name: str, outputs: list[str]) -> Any:
        """The GraphProto of a branch whose results are `outputs` (activations of this writer's float type)."""
        from onnx import helper

        return helper.make_graph(self.nodes, name, [], [helper.make_tensor_value_info(o, self.float, None)
                                                         for o in outputs])

    def linear(self, x: str, weight: np.ndarray, name: str, bias: np.ndarray | None = None,
               output: str | None = None, dense: bool = False) -> str:
        """x @ weight (+ bias) for a (in, out) weight: MatMul, or MatMulNBits when quantising (unless `dense`)."""
        outputs = [output] if output else 1
        if self.quantize and not dense:
            rows, cols = weight.shape
            packed, scales, zero_points = quantize_4bit(weight)
            inputs = [x, self.weight(f"{name}.qweight", packed), self.weight(f"{name}.scales", scales),
                      self.weight(f"{name}.zero_points", zero_points)]
            if bias is not None:
                inputs += ["", self.weight(f"{name}.bias", bias.astype("float32", copy=False))]
            return self.op("MatMulNBits", inputs, outputs, MS, name=f"{name}/MatMulNBits", K=rows, N=cols, bits=4,
                           block_size=BLOCK)
        if bias is None:
            return self.op("MatMul", [x, self.weight(f"{name}.weight", weight.astype("float32", copy=False))], outputs,
                           name=f"{name}/MatMul")
        product = self.op("MatMul", [x, self.weight(f"{name}.weight", weight.astype("float32", copy=False))],
                          name=f"{name}/MatMul")
        return self.op("Add", [product, self.weight(f"{name}.bias", bias.astype("float32", copy=False))], outputs,
                       name=f"{name}/Add")

    def save(self, graph_name: str) -> Path:
        """Write the .onnx file next to its finished data file (removed again when nothing went there)."""
        import onnx
        from onnx import helper

        self._data.close()
        data = self.path.parent / self.data_name
        if data.stat().st_size == 0:
            data.unlink()
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                                  producer_name="describe-screen")
        model.ir_version = 8
        onnx.save_model(model, str(self.path))
        return self.path
