"""The text form of the IR: MLIR-like, stable, and read back by :mod:`graphir.ir.parser`.

Grammar (one node per line, in a deterministic topological order with ties broken by name)::

    graph @main {
      inputs {"x" = %x}
      outputs {"y" = %y, "aux" = %split:1}
      attributes {tf.versions = {min_consumer = 12, producer = 1882}}
      %x = tf.Placeholder() {dtype = f32, shape = #shape<?x4>} : () -> tensor<?x4xf32>
      %split = tf.Split(%dim, %x, ^init) {num_split = 2} device("/cpu:0") : (tensor<i32>, tensor<?x4xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>)
    }

Attribute values: ``"str"``, ``#bytes<hex>``, ints, floats (always with ``.``/``e``, or ``inf``/``nan``),
``true``/``false``, ``unit``, dtypes (``f32``), ``#shape<2x?>`` / ``#shape<*>``, ``[lists]``, ``{dicts}``,
``@func`` / ``@func{attrs}``, ``$placeholder`` and tensors:
``dense<[1.0, 2.0]> : tensor<2xf32>`` (small, or with ``full_constants``; ``dense<"0xHEX">`` for large
numeric ones) or ``dense_resource<sha:DIGEST> : tensor<...>`` when elided. An op type outside TF's op-name
alphabet is quoted: ``my."odd.op"(...)``.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from .types import DType, FuncRef, Placeholder, Shape, Subgraph, Tensor, TensorType

if TYPE_CHECKING:
    from .core import Graph, Node

INLINE_ELEMENTS = 16          # constants up to this many elements always print in full
HEX_THRESHOLD = 64            # with full constants, above this many elements use a hex blob
BLOB_INLINE_BYTES = 4096      # graph-level blobs up to this size always print in full

_BARE_OP = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_>]*\Z")  # TF op names; others (e.g. with a dot) are quoted
_BARE_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-/>]*\Z")  # \Z: "$" would accept a trailing newline


class Elided:
    """Placeholder for graph-level bytes omitted from an abbreviated dump."""

    __slots__ = ("digest", "size")

    def __init__(self, digest: str, size: int):
        self.digest = digest
        self.size = size

    def __eq__(self, other):
        return isinstance(other, Elided) and (self.digest, self.size) == (other.digest, other.size)

    def __repr__(self):
        return f"Elided({self.digest}, {self.size})"


def quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=True)


def sym(name: str) -> str:
    """A node name as it appears after ``%`` or ``@``."""
    return name if _BARE_NAME.match(name) else quote(name)


def value_ref(v) -> str:
    """``%node`` / ``%node:i`` for a node output named by its dialect's convention; ``%name`` for a value
    with a name of its own (an argument, an initializer, a named output); ``none`` for an absent operand."""
    if v is None:
        return "none"
    if v.node is None or v._name is not None:
        return "%" + sym(v.name)
    base = "%" + sym(v.node.name)
    return base if v.index == 0 else f"{base}:{v.index}"


def fmt_float(x: float, dtype: str = "f32") -> str:
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if dtype == "f64":
        s = repr(float(x))
    elif dtype == "f16":
        s = str(np.float16(x))
    else:  # f32 attributes, and bf16/f8 elements (exactly representable in f32)
        s = str(np.float32(x))
    if not any(c in s for c in ".en"):
        s += ".0"
    return s


def fmt_bytes(b: bytes) -> str:
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return f"#bytes<{b.hex()}>"
    return quote(s)


def _fmt_elem(x, dtype: DType) -> str:
    if dtype.name == "string":
        return fmt_bytes(x if isinstance(x, bytes) else str(x).encode())
    if dtype.name == "bool":
        return "true" if x else "false"
    if dtype.is_float:
        return fmt_float(float(x), dtype.name)
    return str(int(x))


def fmt_tensor(t: Tensor, full: bool) -> str:
    ty = TensorType(t.dtype, t.shape).text()
    n = t.size
    if t.digest_only or (n > INLINE_ELEMENTS and not full):
        return f"dense_resource<sha:{t.digest()}> : {ty}"
    a = t.numpy()
    if t.dtype.name != "string" and (n > HEX_THRESHOLD or t.dtype.name.startswith("c") or t.dtype.np is None):
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        return f'dense<"0x{raw.hex().upper()}"> : {ty}'
    elems = ", ".join(_fmt_elem(x, t.dtype) for x in a.reshape(-1))
    return f"dense<[{elems}]> : {ty}"


def fmt_attr(v: Any, full: bool = False) -> str:
    if v is None:
        return "unit"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt_float(v)
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, bytes):
        if len(v) > BLOB_INLINE_BYTES and not full:
            import hashlib

            return f"#blob<sha:{hashlib.sha256(v).hexdigest()[:16]}, {len(v)}>"
        return f"#bytes<{v.hex()}>"
    if isinstance(v, Elided):
        return f"#blob<sha:{v.digest}, {v.size}>"
    if isinstance(v, DType):
        return v.name
    if isinstance(v, Shape):
        return f"#shape<{v.text()}>"
    if isinstance(v, Tensor):
        return fmt_tensor(v, full)
    if isinstance(v, TensorType):
        return v.text()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt_attr(x, full) for x in v) + "]"
    if isinstance(v, dict):
        return fmt_attr_dict(v, full)
    if isinstance(v, FuncRef):
        return "@" + sym(v.name) + (fmt_attr_dict(dict(v.attrs), full) if v.attrs else "")
    if isinstance(v, Placeholder):
        return "$" + sym(v.name)
    if isinstance(v, Subgraph):
        caps = ", ".join(value_ref(c) for c in v.captures)
        body = print_graph(v.graph, full_constants=full).rstrip("\n").replace("\n", "\n    ")
        return f"#graph<captures({caps})> {body}"
    raise TypeError(f"cannot print attribute value of type {type(v).__name__}")


def fmt_attr_dict(d: dict, full: bool = False) -> str:
    return "{" + ", ".join(f"{sym(k)} = {fmt_attr(d[k], full)}" for k in sorted(d)) + "}"


def _fmt_types(types: list[TensorType]) -> str:
    return "(" + ", ".join(t.text() for t in types) + ")"


def print_node(node: Node, full_constants: bool = False) -> str:
    operands = [value_ref(v) for v in node._inputs] + ["^" + sym(c.name) for c in node.control_inputs]
    op = node.op_type if _BARE_OP.match(node.op_type) else quote(node.op_type)
    parts = [f"%{sym(node.name)} = {node.domain + '.' if node.domain else ''}{op}({', '.join(operands)})"]
    if node.attrs:
        parts.append(fmt_attr_dict(node.attrs, full_constants))
    if node.device:
        parts.append(f"device({quote(node.device)})")
    outs = [v.type for v in node.outputs]
    out_text = outs[0].text() if len(outs) == 1 else _fmt_types(outs)
    parts.append(f": {_fmt_types([v.type for v in node._inputs if v is not None])} -> {out_text}")
    if any(v._name is not None for v in node.outputs):
        parts.append("results(" + ", ".join("_" if v._name is None else quote(v._name) for v in node.outputs) + ")")
    return " ".join(parts)


def _fmt_ports(ports) -> str:
    return "{" + ", ".join(f"{quote(p.name)} = {value_ref(p.value)}" for p in ports) + "}"


def print_graph(graph: Graph, *, full_constants: bool = False) -> str:
    lines = [f"graph @{sym(graph.name)} {{"]
    lines.append(f"  inputs {_fmt_ports(graph.inputs)}")
    lines.append(f"  outputs {_fmt_ports(graph.outputs)}")
    for kind, vals in (("arguments", graph.arguments), ("captures", graph.captures)):
        if vals:
            lines.append(f"  {kind} {{" + ", ".join(f"%{sym(v.name)} : {v.type.text()}" for v in vals) + "}")
    if graph.initializers:
        items = [f"%{sym(k)} = {fmt_tensor(v.const, full_constants)}" for k, v in sorted(graph.initializers.items())]
        lines.append("  initializers {" + ", ".join(items) + "}")
    if graph.opset_imports:
        lines.append(f"  opsets {fmt_attr_dict(dict(graph.opset_imports))}")
    if graph.attrs:
        lines.append(f"  attributes {fmt_attr_dict(graph.attrs, full_constants)}")
    for node in graph.topo_order():
        lines.append("  " + print_node(node, full_constants))
    lines.append("}")
    return "\n".join(lines) + "\n"
