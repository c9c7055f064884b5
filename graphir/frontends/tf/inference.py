"""Types and shapes of every NodeDef output, from TF's own GraphDef importer and shape inference.

The GraphDef is imported into a scratch ``tf.Graph`` once; big constants are imported without their data
(only their shape matters here) and ops this TF does not know are stood in for by typed placeholders.
"""
from __future__ import annotations

from ...dialects.tf import _op_def
from ...errors import ModelLoadError, one_line
from .attrs import parse_input


def _attr_or_default(nd, od, name):
    if name in nd.attr:
        return nd.attr[name]
    for a in od.attr:
        if a.name == name and a.HasField("default_value"):
            return a.default_value
    return None


def _expected_input_types(nd) -> list:
    """The TF DataType enums a known op expects on each input slot (0 where unknown)."""
    od = _op_def(nd.op)
    if od is None:
        return []
    out = []
    for arg in od.input_arg:
        if arg.number_attr:
            n = _attr_or_default(nd, od, arg.number_attr)
            t = arg.type or getattr(_attr_or_default(nd, od, arg.type_attr), "type", 0)
            out.extend([t] * (n.i if n is not None else 0))
        elif arg.type_list_attr:
            lv = _attr_or_default(nd, od, arg.type_list_attr)
            out.extend(lv.list.type if lv is not None else [])
        else:
            av = None if arg.type else _attr_or_default(nd, od, arg.type_attr)
            out.append(arg.type or (av.type if av is not None else 0))
    return out


_BIG_CONST = 1024  # bytes; larger constants are stripped before TF's import (only their shape matters)


def _typing_graph_def(gd, unknown: set):
    """The GraphDef that TF imports for type inference: big constants without their data, and each
    unregistered op replaced by typed Placeholders feeding an ``IdentityN`` of the same name."""
    from tensorflow.core.framework import graph_pb2, types_pb2

    n_out: dict[str, int] = {}
    want: dict[tuple[str, int], int] = {}
    if unknown:
        for nd in gd.node:
            exp = None
            for slot, s in enumerate(i for i in nd.input if not i.startswith("^")):
                src, idx = parse_input(s)
                if src in unknown:
                    n_out[src] = max(n_out.get(src, 1), idx + 1)
                    if exp is None:
                        exp = _expected_input_types(nd)
                    if slot < len(exp) and exp[slot]:
                        want.setdefault((src, idx), exp[slot])
    big = [i for i, nd in enumerate(gd.node)
           if nd.op == "Const" and "value" in nd.attr and nd.attr["value"].tensor.ByteSize() > _BIG_CONST]
    if not big and not unknown:
        return gd
    out = graph_pb2.GraphDef()
    out.CopyFrom(gd)
    for i in big:
        t = out.node[i].attr["value"].tensor
        dtype, shape = t.dtype, t.tensor_shape.SerializeToString()
        t.Clear()
        t.dtype = dtype
        t.tensor_shape.ParseFromString(shape)
    for i, nd in enumerate(gd.node):
        if nd.name not in unknown:
            continue
        shapes = list(nd.attr["_output_shapes"].list.shape) if "_output_shapes" in nd.attr else []
        k = max(n_out.get(nd.name, 1), len(shapes))
        own = []
        for key in ("Tout", "output_types", "out_types"):
            if key in nd.attr and len(nd.attr[key].list.type):
                own = list(nd.attr[key].list.type)
        for key in ("T", "dtype", "out_type"):
            if not own and key in nd.attr and nd.attr[key].WhichOneof("value") == "type":
                own = [nd.attr[key].type]
        types = []
        for j in range(k):
            t = want.get((nd.name, j)) or (own[j] if j < len(own) else own[-1] if own else types_pb2.DT_FLOAT)
            types.append(t % 100)
            ph = out.node.add(name=f"{nd.name}/__graphir_out_{j}", op="Placeholder")
            ph.attr["dtype"].type = t % 100
            if j < len(shapes):
                ph.attr["shape"].shape.CopyFrom(shapes[j])
            else:
                ph.attr["shape"].shape.unknown_rank = True
        idn = out.node[i]
        idn.Clear()
        idn.name, idn.op = nd.name, "IdentityN"
        idn.input.extend(f"{nd.name}/__graphir_out_{j}" for j in range(k))
        idn.attr["T"].list.type.extend(types)
    return out


def infer_types(gd, label: str):
    """Import ``gd`` into a fresh tf.Graph for TF's shape inference.

    Returns (``name -> [(dtype enum, dims or None)]`` per output, names of unregistered ops)."""
    import tensorflow as tf

    lib = {f.signature.name for f in gd.library.function}
    unknown = {nd.name for nd in gd.node if nd.op not in lib and _op_def(nd.op) is None}
    tgd = _typing_graph_def(gd, unknown)
    g = tf.Graph()
    try:
        try:
            return _import_types(g, tgd), unknown
        except (AttributeError, ImportError, TypeError):  # TF's private API moved: take the public path
            g = tf.Graph()
        with g.as_default():
            tf.graph_util.import_graph_def(tgd, name="")
    # The importer rejects a bad GraphDef with ValueError, InvalidArgumentError (an OpError) or TypeError.
    except (ValueError, TypeError, tf.errors.OpError) as e:
        raise ModelLoadError(f"{label}: invalid GraphDef: {one_line(e, 300)}") from None
    types = {}
    for op in g.get_operations():
        types[op.name] = [(t.dtype.as_datatype_enum, None if t.shape.rank is None else t.shape.as_list())
                          for t in op.outputs]
    return types, unknown


def _import_types(g, gd) -> dict:
    """The C-level half of ``tf.graph_util.import_graph_def`` (the same TF_GraphImportGraphDef call and
    shape inference), reading each output's dtype and shape off bare Operation wrappers. The public call
    also registers every op with the Python graph and resolves devices and colocation, which costs several
    times the import itself and is of no use here."""
    from tensorflow.python.client import pywrap_tf_session as c_api
    from tensorflow.python.framework import c_api_util, ops

    opts = c_api_util.ScopedTFImportGraphDefOptions()
    c_api.TF_ImportGraphDefOptionsSetPrefix(opts.options, "")
    buf = c_api.TF_NewBufferFromString(gd.SerializeToString())
    try:
        with g._c_graph.get() as c_graph:
            results = c_api.TF_GraphImportGraphDefWithResults(c_graph, buf, opts.options)
        c_api_util.ScopedTFImportGraphDefResults(results)
    finally:
        c_api.TF_DeleteBuffer(buf)
    types = {}
    for c_op in g.new_operations():
        op = ops.Operation(c_op, ops.SymbolicTensor)
        op.graph = g
        op._init_outputs()
        out = []
        for t in op.outputs:
            dims, unknown_rank = t._shape
            out.append((t._dtype.as_datatype_enum, None if unknown_rank else list(dims)))
        types[op.name] = out
    return types
