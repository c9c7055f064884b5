"""tf-to-onnx: convert a graph of the tf dialect into the onnx dialect (TF -> ONNX export).

The pass runs after the TF FP32 pipeline (batch norms folded, GELU / swish / LayerNorm / einsum
canonicalized), so converters see few spellings of each computation. It is all or nothing: before
anything changes, every TF op without a converter is named in one :class:`ExportError` (exit 2).

Then, in topological order: placeholders become graph arguments (keeping the input names), constants
initializers, and every other node is replaced by what its converter (``nn``, ``math``, ``array``)
builds. Each ONNX value is named after the TF value it stands for, graph outputs after their ports.
Control edges have no ONNX meaning and are dropped (they only order side effects, and an inference graph
exported here has none). Last, ONNX's own shape inference (with data propagation) types every value, and
the graph imports op set ``opset`` of the default domain.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ...dialects.onnx import DOMAIN, unique_value_name
from ...ir import Graph
from ...ir.types import Shape, TensorType
from ..base import Pass, PassResult, register_pass
from . import array, math, nn  # noqa: F401  (converters register themselves)
from .context import CONVERTERS, Ctx, ExportError

TF = "tf"
MIN_OPSET = 13
DEFAULT_OPSET = 17  # what export writes unless asked: LayerNormalization's op set, run by every current ORT
# Dropped: they order or check execution, which an exported inference graph does not need.
DROPPED = {"NoOp", "Assert"}


def unsupported_ops(graph: Graph) -> list[str]:
    """TF op types in ``graph`` that have no ONNX conversion, sorted."""
    return sorted({n.op_type for n in graph.nodes() if n.domain == TF and n.op_type not in CONVERTERS
                   and n.op_type not in DROPPED and n.op_type not in ("Placeholder", "Const")})


def max_opset() -> int:
    import onnx.defs

    return onnx.defs.onnx_opset_version()


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= max_opset():
        raise ExportError(f"--opset {opset}: ONNX export supports op sets {MIN_OPSET} to {max_opset()}")


def _refine_types(graph: Graph) -> None:
    """Type every node output with ONNX shape inference (data propagation on), keeping what TF knew where
    inference knows less."""
    import onnx.shape_inference
    from onnx import TensorProto, helper

    from ...backends.onnx import to_model_named
    from ...dialects.onnx import dtype_to_onnx
    from ...frontends.onnx import type_from_proto

    m, names = to_model_named(graph)
    int_types = (TensorProto.INT32, TensorProto.INT64)
    # Weights travel as typed graph inputs (no copies); small integer tensors (pads, shapes, axes) stay,
    # since inference reads their values.
    keep = [t for t in m.graph.initializer if t.data_type in int_types and prod(t.dims) <= 512
            and not t.external_data]
    dropped = {t.name for t in m.graph.initializer} - {t.name for t in keep}
    m.graph.ClearField("initializer")
    m.graph.initializer.extend(keep)
    for k, v in graph.initializers.items():
        name = names.get(id(v), k)
        if name in dropped:
            m.graph.input.append(helper.make_tensor_value_info(name, dtype_to_onnx(v.dtype), list(v.shape.dims)))
    inferred = onnx.shape_inference.infer_shapes(m, data_prop=True)
    types = {vi.name: vi.type for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for node in graph.nodes():
        new = []
        for v in node.outputs:
            t = types.get(names.get(id(v), v.name))  # the name the writer gave it
            cur = v.type
            if t is not None and t.HasField("tensor_type"):
                inf = type_from_proto(t)
                if inf.dtype is cur.dtype and inf.shape.rank is not None and (
                        cur.shape.rank is None or _more_known(inf, cur)):
                    cur = TensorType(cur.dtype, _merge_dims(inf, cur))
            new.append(cur)
        if any(a is not b for a, b in zip(new, [v.type for v in node.outputs])):
            graph.set_output_types(node, new)


def _keep_tf_shape(graph: Graph, old, new) -> None:
    """Give ``new`` (what stands for TF's ``old``) TF's shape where its own is less known, so the converters
    of later nodes see their operands' shapes (ONNX shape inference only runs after the conversion)."""
    if new.node is None or new.node.domain != DOMAIN or new.dtype is not old.dtype or old.shape.rank is None:
        return
    if new.shape.rank is None or _more_known(old.type, new.type):
        types = [v.type for v in new.node.outputs]
        types[new.index] = TensorType(new.dtype, _merge_dims(old.type, new.type) if new.shape.rank is not None
                                      else old.shape)
        graph.set_output_types(new.node, types)


def _more_known(a: TensorType, b: TensorType) -> bool:
    """``a`` knows a dim (or the rank) that ``b`` does not."""
    if a.shape.rank is None:
        return False
    if b.shape.rank is None:
        return True
    return a.shape.rank == b.shape.rank and any(x is not None and y is None for x, y in zip(a.shape.dims, b.shape.dims))


def _merge_dims(inf: TensorType, cur: TensorType) -> Shape:
    if cur.shape.rank is None or cur.shape.rank != inf.shape.rank:
        return inf.shape
    return Shape([x if x is not None else y for x, y in zip(cur.shape.dims, inf.shape.dims)])


@register_pass
@dataclass(frozen=True)
class TFToONNX(Pass):
    """After: every node is an onnx node of op set ``opset``; graph inputs are arguments with the TF input
    names, graph outputs keep their names, constants are initializers; the graph computes what the TF graph
    computed (checked by running both: TF for the original, ONNX Runtime for the result)."""

    name = "tf-to-onnx"
    phase = "lower"
    opset: int = DEFAULT_OPSET

    def run(self, graph: Graph) -> PassResult:
        check_opset(self.opset)
        if not any(n.domain == TF for n in graph.nodes()) and not any(
                p.value.node is not None and p.value.node.domain == TF for p in graph.inputs):
            return PassResult.of(converted=0)  # nothing of TF's left (already converted)
        missing = unsupported_ops(graph)
        if missing:
            raise ExportError(f"cannot export to ONNX: no conversion for TensorFlow op"
                              f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if any(n.domain not in (TF, DOMAIN) for n in graph.nodes()):
            raise ExportError("cannot export to ONNX: the graph has nodes of other dialects")
        order = graph.topo_order()
        graph.opset_imports = {DOMAIN: self.opset}
        # Inputs first, so their names are taken before any other value is named.
        inputs, done = [], set()
        for p in graph.inputs:
            v = p.value
            if v.node is not None and v.node.domain == TF:
                arg = graph.add_argument(unique_value_name(graph, p.name), TensorType(v.dtype, v.shape))
                graph.replace_all_uses_with(v, arg)
                inputs.append((p.name, arg))
                done.add(v.node)
            else:
                inputs.append((p.name, v))
        graph.set_graph_inputs(inputs)
        # forward_control=False: control edges, in and out, go with the node (they have no ONNX meaning).
        for n in done:
            graph.remove_node(n, forward_control=False)
        out_names = {}
        for p in graph.outputs:
            out_names.setdefault(id(p.value), p.name)
        converted = 0
        consts: set[str] = set()
        for node in order:
            if node.domain != TF or node in done:
                continue
            news = self._convert(graph, node, consts)
            for old, new in zip(node.outputs, news):
                want = out_names.get(id(old), old.name)
                if new.node is not None and new.node.domain == DOMAIN and new.name.startswith(node.name + "/"):
                    graph.set_value_name(new, unique_value_name(graph, want))
                _keep_tf_shape(graph, old, new)
                graph.replace_all_uses_with(old, new)
            graph.remove_node(node, forward_control=False)
            converted += 1
        # Constants a converter read at conversion time (filters, shapes, axes) are left unread.
        for v in list(graph.initializers.values()):
            if v.name in consts and not graph.has_uses(v) and not graph.is_output(v):
                graph.remove_initializer(v)
        for k in [k for k in graph.attrs if k.startswith("tf.")]:
            del graph.attrs[k]
        graph.attrs["onnx.producer_name"] = "graphir"
        _refine_types(graph)
        return PassResult.of(converted=converted)

    def _convert(self, graph: Graph, node, consts: set):
        if node.op_type == "Placeholder":
            return [graph.add_argument(unique_value_name(graph, node.outputs[0].name), node.outputs[0].type)]
        if node.op_type == "Const":
            t = node.const_value()
            if t is None:
                raise ExportError(f"{node.name} (Const): no value")
            v = graph.add_initializer(unique_value_name(graph, node.outputs[0].name), t)
            consts.add(v.name)
            return [v]
        if node.op_type in DROPPED:
            return []
        out = CONVERTERS[node.op_type](Ctx(graph, node, self.opset))
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        # A converter that disagrees with TF's types is a graphir bug (the pass manager reports it, exit 3).
        if len(outs) != len(node.outputs):
            raise RuntimeError(f"{node.name} ({node.op_type}): converter made {len(outs)} outputs for "
                               f"{len(node.outputs)}")
        for old, new in zip(node.outputs, outs):
            if new.dtype is not old.dtype:
                raise RuntimeError(f"{node.name} ({node.op_type}): converted output is {new.dtype.name}, "
                                   f"TF's is {old.dtype.name}")
        return outs


__all__ = ["TFToONNX", "ExportError", "CONVERTERS", "unsupported_ops", "check_opset", "max_opset", "MIN_OPSET",
           "DEFAULT_OPSET"]
