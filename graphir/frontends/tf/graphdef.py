"""GraphDef -> IR: one IR node per NodeDef, typed by TF's importer, with the detected signature.

Also reading ``.pb`` / ``.pbtxt`` files, and the TF placeholder used when a graph is cut at an inner
tensor.
"""
from __future__ import annotations

from ...dialects.tf import NODE_EXTRAS, SOURCES, dtype_from_tf
from ...errors import ModelLoadError
from ...ir import Graph, Port, Shape, TensorType
from ..signature import apply_signature
from .attrs import convert_attr, parse_input
from .inference import infer_types

# Sinks that are never graph outputs.
NOT_OUTPUTS = {"Const", "NoOp", "Assert", "HostConst"} | SOURCES
INPUT_OPS = SOURCES  # for code that reads raw NodeDefs (runtime_check); IR nodes ask ``node.info.source``


def _tensor_type(t, cache: dict) -> TensorType:
    enum, dims = t
    dt = cache.get(enum)
    if dt is None:
        dt = cache[enum] = dtype_from_tf(enum)
    return TensorType(dt, Shape(dims))


def from_graph_def(graph_def, inputs=None, outputs=None, name: str = "main", signature_names=None,
                   *, label: str = "GraphDef") -> Graph:
    """Build the IR of ``graph_def``. ``inputs``/``outputs`` override the detected signature (tensor or
    port names); ``signature_names`` maps tensor names to port names for the detected/given ports."""
    tf_types, unknown = infer_types(graph_def, label)
    graph = Graph(name)
    dcache: dict = {}
    pending = []
    for nd in graph_def.node:
        types = [_tensor_type(t, dcache) for t in tf_types[nd.name]]
        attrs = {k: convert_attr(v) for k, v in nd.attr.items()}
        # Inputs are wired in a second sweep: GraphDefs need not be in topological order.
        node = graph.add_node(nd.op, (), attrs, types, domain="tf", name=nd.name, device=nd.device, unique=False)
        for field in NODE_EXTRAS:
            if nd.HasField(field):
                node.meta["tf." + field] = getattr(nd, field).SerializeToString(deterministic=True)
        pending.append((node, nd.input))
    for node, ins in pending:
        data, ctrl = [], []
        for s in ins:
            src, idx = parse_input(s)
            if idx is None:
                ctrl.append(graph.node(src))
            else:
                data.append(graph.node(src).outputs[idx])
        if data:
            graph.set_inputs(node, data)
        for c in ctrl:
            graph.add_control_input(node, c)
    if graph_def.HasField("versions"):
        v = graph_def.versions
        graph.attrs["tf.versions"] = {"producer": int(v.producer), "min_consumer": int(v.min_consumer),
                                      "bad_consumers": [int(x) for x in v.bad_consumers]}
    if graph_def.HasField("library") and graph_def.library.ByteSize():
        graph.attrs["tf.library"] = graph_def.library.SerializeToString(deterministic=True)
    if graph_def.HasField("debug_info"):
        graph.meta["tf.debug_info"] = graph_def.debug_info.SerializeToString(deterministic=True)
    names = dict(signature_names or {})
    graph.inputs = [Port(names.get(v.name, v.name), v) for v in default_inputs(graph)]
    graph.outputs = [Port(names.get(v.name, v.name), v) for v in default_outputs(graph)]
    if unknown:
        graph.meta["tf.unknown_ops"] = sorted(unknown)
    return apply_signature(graph, inputs, outputs, make_placeholder=new_placeholder, port_names=names)


def default_inputs(graph: Graph) -> list:
    return [n.outputs[0] for n in graph.nodes() if n.info.source and n.outputs]


def default_outputs(graph: Graph) -> list:
    out = []
    for n in graph.nodes():
        if n.op_type in NOT_OUTPUTS or not n.outputs or graph.users(n) or graph.control_users(n):
            continue
        info = n.info
        if info.side_effecting and info.known:  # an unknown op at a sink is taken to be a model output
            continue
        if n.inputs and all(v.node.op_type in ("Switch", "RefSwitch") for v in n.inputs):
            continue  # a TF1 cond's branch pivot (cond/switch_t, cond/switch_f) with an empty branch
        out.extend(n.outputs)
    return out


def new_placeholder(graph: Graph, value, name: str):
    """A ``Placeholder`` producing a tensor of ``value``'s type (used to cut a graph at an inner tensor)."""
    dt = value.dtype.base
    return graph.add_node("Placeholder", (), {"dtype": dt, "shape": value.shape},
                          [TensorType(dt, value.shape)], domain="tf", name=name)


def read_graph_def(path: str, text: bool):
    """Parse a binary or text GraphDef file; a ``.pb`` that is really text is accepted too."""
    from google.protobuf import message, text_format
    from tensorflow.core.framework import graph_pb2

    with open(path, "rb") as f:
        data = f.read()
    gd = graph_pb2.GraphDef()
    # A binary file that fails to parse may still be a text GraphDef under a .pb name.
    for as_text in ((True,) if text else (False, True)):
        try:
            if as_text:
                text_format.Parse(data.decode("utf-8"), gd)
            else:
                gd.ParseFromString(data)
            break
        except (message.DecodeError, text_format.ParseError, UnicodeDecodeError):
            gd.Clear()
    else:
        kind = "text " if text else ""
        raise ModelLoadError(f"{path}: not a TensorFlow {kind}GraphDef (failed to parse {len(data)} bytes)")
    if not _plausible(gd):
        raise ModelLoadError(f"{path}: not a TensorFlow GraphDef ({len(data)} bytes parse to no valid nodes)")
    return gd


def _plausible(gd) -> bool:
    """Random bytes sometimes parse as a protobuf; a real GraphDef has named nodes and no unknown fields."""
    import re

    from google.protobuf import unknown_fields

    if not len(gd.node) or len(unknown_fields.UnknownFieldSet(gd)):
        return False
    ok = re.compile(r"^[A-Za-z0-9_.\-/>]+$")
    return all(ok.match(n.name) and ok.match(n.op) for n in gd.node)
