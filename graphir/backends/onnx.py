"""The ONNX backend: an ``onnx`` IR graph back to a ``ModelProto`` / ``.onnx`` file.

What the frontend kept comes back as it was: value and node names (an empty node name stays empty), node
order where it is still topological, initializers (an untouched constant is its original TensorProto,
external-data references included), attribute kinds (from the node's record or the op schema), model
fields, op set imports in their order, local functions, doc strings and metadata, and the original
``ValueInfoProto`` of every value whose type did not change. Values new to the graph get names that
clash with nothing in any scope.

External data: a tensor that was external stays in the same file at the same offset; :func:`save` copies
each such file next to the output (a kernel-side copy) unless it is already there, or, when passes
replaced most of what the input used of a file, moves its remaining tensors to the new data file instead.
New tensors of a model that had external data, and every large tensor of a model that would pass 2 GB, go
to ``<output>.data`` (another name if that one is taken by a kept file or any data file of the input),
written from their arrays. The data files and the model appear together
(:func:`graphir.backends.atomic.atomic_files`).
"""
from __future__ import annotations

import os
import shutil
from typing import Optional

import numpy as np
from google.protobuf.internal import wire_format
from google.protobuf.internal.decoder import _DecodeVarint
from google.protobuf.internal.encoder import TagBytes, _VarintBytes
from onnx import AttributeProto as A
from onnx import (FunctionProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, SparseTensorProto,
                  StringStringEntryProto, TensorProto, TypeProto, helper, numpy_helper)

from ..dialects.onnx import (DOMAIN, VARIANT, attr_type, dtype_from_onnx, dtype_to_onnx, is_onnx_graph,
                             split_op)
from ..errors import GraphirError, one_line
from ..frontends.onnx import external_bytes
from ..ir import Graph, Node, Value
from ..ir.types import DType, Subgraph, Tensor, TensorType

try:
    from google.protobuf.unknown_fields import UnknownFieldSet
except ImportError:  # protobuf < 4.22: kept tensors are then serialized whole, not streamed
    UnknownFieldSet = None

EXTERNAL_MIN_BYTES = 1024          # new tensors at least this big go to the data file of an external model
PROTO_LIMIT = (2 << 30) - (64 << 20)  # stay clear of protobuf's 2 GB message limit
PROTO_MAX = (2 << 30) - 1          # the largest message protobuf reads


def _is_external(p) -> bool:
    return p.data_location == TensorProto.EXTERNAL


def _ext_info(p) -> dict:
    return {e.key: e.value for e in p.external_data}


def _set_external(p, location: str, offset: int, length: int) -> None:
    p.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = p.external_data.add()
        e.key, e.value = k, v


def _kept(t: Tensor) -> bool:
    """``t`` is written as the TensorProto it was read from (external reference included): untouched."""
    enc = t.encoded
    return (enc is not None and enc[0] == "onnx" and list(enc[1].dims) == list(t.shape.dims or ())
            and enc[1].data_type == dtype_to_onnx(t.dtype))


def _raw_stub(a: np.ndarray, name: str):
    """``numpy_helper.from_array(a, name)`` less its raw_data, when that raw_data is ``a``'s own bytes (not
    packed sub-byte values, strings or a big-endian host's) so that it can be written from the array
    directly; else None. Asked of onnx's encoder on a sample."""
    if a.dtype.kind in "OSU" or a.size < 8:
        return None
    sample = np.ascontiguousarray(a.reshape(-1)[:8])
    p = numpy_helper.from_array(sample, name)
    if p.raw_data != sample.tobytes():
        return None
    p.ClearField("raw_data")
    del p.dims[:]
    p.dims.extend(a.shape)
    return p


def _raw_layout(a: np.ndarray) -> bool:
    return _raw_stub(a, "") is not None


def _array(t: Tensor) -> np.ndarray:
    a = t.numpy()
    return a.astype(t.dtype.np) if t.dtype.np is not None and a.dtype != t.dtype.np else a


# ---------------------------------------------------------------------------------- streaming the file
# save() writes the ModelProto's wire bytes without building them in one piece: the model is made without
# its main graph's initializers and serialized (small), then cut where the initializer field goes
# (serializers write known fields in field-number order); each initializer goes in between as tag, varint
# length, its other fields and its raw_data written from the buffer that already holds it (the loaded
# proto's bytes, a new constant's array). The file is byte for byte what SerializeToString() gives,
# without copying every weight into the new proto and again into one big bytes object.
_LEN = wire_format.WIRETYPE_LENGTH_DELIMITED
_GRAPH_TAG = TagBytes(ModelProto.GRAPH_FIELD_NUMBER, _LEN)
_INIT_TAG = TagBytes(GraphProto.INITIALIZER_FIELD_NUMBER, _LEN)
_RAW = TensorProto.RAW_DATA_FIELD_NUMBER
_RAW_TAG = TagBytes(_RAW, _LEN)
STREAM_MIN_BYTES = 4096  # raw payloads at least this big are written from their own buffers


def _field(tag: bytes, pieces: list) -> list:
    """A length-delimited field: ``tag``, the length, then ``pieces`` (bytes, or 1-D byte memoryviews)."""
    return [tag + _VarintBytes(sum(map(len, pieces))), *pieces]


def _cut(buf: bytes, number: int) -> int:
    """Where ``buf``'s top-level fields numbered above ``number`` start (serialized message ``buf``)."""
    pos = 0
    while pos < len(buf):
        tag, nxt = _DecodeVarint(buf, pos)
        if tag >> 3 > number:
            return pos
        kind = tag & 7
        if kind == wire_format.WIRETYPE_VARINT:
            nxt = _DecodeVarint(buf, nxt)[1]
        elif kind == _LEN:
            n, nxt = _DecodeVarint(buf, nxt)
            nxt += n
        elif kind in (wire_format.WIRETYPE_FIXED64, wire_format.WIRETYPE_FIXED32):
            nxt += 8 if kind == wire_format.WIRETYPE_FIXED64 else 4
        else:  # groups: no ONNX message has any
            raise GraphirError(f"cannot write a model with a protobuf group (field {tag >> 3})")
        pos = nxt
    return pos


# TensorProto's fields but raw_data: (name, number, repeated, message)
_TENSOR_FIELDS = [(fd.name, fd.number, hasattr(getattr(TensorProto(), fd.name), "extend"), fd.message_type is not None)
                  for fd in TensorProto.DESCRIPTOR.fields if fd.number != _RAW]


def _kept_pieces(p, name: str, a: Optional[np.ndarray]) -> Optional[list]:
    """Loaded TensorProto ``p`` named ``name`` as wire pieces: its fields before raw_data, raw_data, the
    fields after. The raw_data piece is ``a`` (``p`` decoded) where onnx would encode ``a`` as a tensor of
    ``p``'s type and shape with ``a``'s own bytes for raw_data (then they are ``p``'s: ``a`` holds its
    values), else a copy of ``p``'s. None when ``p`` has fields this onnx does not know (written whole)."""
    if UnknownFieldSet is None or len(UnknownFieldSet(p)):
        return None
    lo, hi = TensorProto(), TensorProto()
    for f, number, repeated, message in _TENSOR_FIELDS:
        dst = lo if number < _RAW else hi
        if repeated:
            if len(v := getattr(p, f)):
                getattr(dst, f).extend(v)
        elif p.HasField(f):
            if message:
                getattr(dst, f).CopyFrom(getattr(p, f))
            else:
                setattr(dst, f, getattr(p, f))
    if p.name != name:
        lo.name = name
    stub = None if a is None else _raw_stub(a, "")
    if stub is not None and stub.data_type == p.data_type and stub.dims == p.dims:
        raw = memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
    else:
        raw = p.raw_data
    return [lo.SerializeToString(), _RAW_TAG + _VarintBytes(len(raw)), raw, hi.SerializeToString()]


def _array_pieces(a: np.ndarray, name: str) -> Optional[list]:
    """``numpy_helper.from_array(a, name)`` as wire pieces, raw_data a view of ``a``; None if not raw."""
    stub = _raw_stub(a, name)
    if stub is None:
        return None
    buf = memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
    return [stub.SerializeToString(), _RAW_TAG + _VarintBytes(len(buf)), buf]


def _model_pieces(m, inits: list) -> list:
    """The wire bytes of ModelProto ``m`` with ``inits`` (the pieces of its main graph's initializers,
    which ``m.graph`` lacks) in place, as pieces to write one after another. Clears ``m.graph``."""
    g = m.graph.SerializeToString()
    m.ClearField("graph")
    rest = m.SerializeToString()
    gcut, mcut = _cut(g, GraphProto.INITIALIZER_FIELD_NUMBER), _cut(rest, ModelProto.GRAPH_FIELD_NUMBER)
    return [rest[:mcut], *_field(_GRAPH_TAG, [g[:gcut], *inits, g[gcut:]]), rest[mcut:]]


def _read_external(p, base_dir: str) -> bytes:
    info = _ext_info(p)
    with open(os.path.join(base_dir, info["location"]), "rb") as f:
        f.seek(int(info.get("offset", 0) or 0))
        n = info.get("length")
        return f.read(int(n)) if n else f.read()


def _stable_topo(graph: Graph) -> list[Node]:
    """Nodes in insertion order where that order is topological; a node is moved only behind what it
    reads (new nodes appended by passes land right before their first reader)."""
    nodes = list(graph.nodes())
    seen: set[int] = set()
    for n in nodes:  # mostly the order is topological already: one pass says so
        if any(v is not None and v.node is not None and id(v.node) not in seen for v in n.inputs) or any(
                v.node is not None and id(v.node) not in seen for _, sg in n.subgraphs() for v in sg.captures):
            break
        seen.add(id(n))
    else:
        return nodes
    order: list[Node] = []
    done: set[int] = set()
    onstack: set[int] = set()
    for root in nodes:
        if id(root) in done:
            continue
        stack = [(root, False)]
        while stack:
            n, expanded = stack.pop()
            if id(n) in done:
                continue
            if expanded:
                onstack.discard(id(n))
                done.add(id(n))
                order.append(n)
                continue
            onstack.add(id(n))
            stack.append((n, True))
            preds = [v.node for v in n.inputs if v is not None and v.node is not None]
            preds += [v.node for _, sg in n.subgraphs() for v in sg.captures if v.node is not None]
            for p in reversed(preds):
                if id(p) not in done and id(p) not in onstack:
                    stack.append((p, False))
    return order


def _compatible(tp, cur: TensorType) -> bool:
    """A declared TypeProto ``tp`` still describes a value of type ``cur``: the same element type, and the
    dims it knows agree. (Read as :func:`graphir.frontends.onnx.type_from_proto` reads it, straight off the
    proto: this runs for every value of the graph.)"""
    if not tp.HasField("tensor_type"):
        return cur.dtype is VARIANT
    tt = tp.tensor_type
    if (dtype_from_onnx(tt.elem_type) if tt.elem_type else VARIANT) is not cur.dtype:
        return False
    if not tt.HasField("shape"):
        return True
    dims = cur.shape.dims
    return dims is not None and len(dims) == len(tt.shape.dim) and all(
        c == d.dim_value or not d.HasField("dim_value") or d.dim_value < 0 for d, c in zip(tt.shape.dim, dims))


class _Writer:
    def __init__(self, graph: Graph, external: str):
        self.graph = graph
        self.external = external      # "keep" (references stay) or "inline" (read into the proto)
        self.names: dict[int, str] = {}
        self.scopes: list[set[str]] = []  # names defined in the graph being written and its enclosing ones
        self.reserved = self._own_names(graph)
        self.ext_sources: dict[str, str] = {}    # location -> source directory, for save() to copy
        self.spill = None  # raw bytes -> (location, offset): where new tensors go in an external-data model
        self.compact: set[str] = set()  # data files (absolute) whose kept tensors move to the new data file
        self.stream: Optional[list] = None  # save(): the main graph's initializers go here as wire pieces

    @classmethod
    def _own_names(cls, g: Graph) -> set[str]:
        out = set(g.initializers) | {v.name for v in g.arguments} | {v.name for v in g.captures}
        for n in g.nodes():
            out.update(v._name for v in n.outputs if v._name is not None)
            for _, sg in n.subgraphs():
                out |= cls._own_names(sg.graph)
        return out

    def taken(self, name: str) -> bool:
        return any(name in s for s in self.scopes)

    def define(self, v: Value, want: Optional[str] = None) -> str:
        """The name ``v`` is written under: its own, unless an enclosing scope took it (sibling bodies may
        reuse names); a derived name also avoids every own name of the model."""
        name = want if want is not None else v.name
        own = want is not None or v._name is not None or v.node is None
        if self.taken(name) or (not own and name in self.reserved):
            base, i = name, 0
            while self.taken(name) or name in self.reserved:
                name = f"{base}_{i}"
                i += 1
        self.scopes[-1].add(name)
        self.names[id(v)] = name
        return name

    def name(self, v: Value) -> str:
        n = self.names.get(id(v))
        if n is None:
            raise GraphirError(f"value {v.name!r} is used before it is defined")
        return n

    # ------------------------------------------------------------------ tensors and attributes
    def tensor(self, t: Tensor, name: str, p) -> None:
        """Fill TensorProto ``p`` (already in place in the model, so nothing is copied twice)."""
        enc = t.encoded
        if _kept(t):
            p.CopyFrom(enc[1])
            if p.name != name:  # (an unset name stays unset)
                p.name = name
            if _is_external(p):
                src = os.path.abspath(os.path.join(enc[2], _ext_info(p)["location"]))
                if src in self.compact:
                    data = external_bytes(p, enc[2])
                    p.ClearField("external_data")
                    loc, off = self.spill(data)
                    _set_external(p, loc, off, data.nbytes)
                elif self.external == "inline":
                    raw = _read_external(p, enc[2])
                    p.ClearField("external_data")
                    p.data_location = TensorProto.DEFAULT
                    p.raw_data = raw
                else:
                    self.ext_sources.setdefault(_ext_info(p)["location"], enc[2])
            return
        if t.digest_only:
            raise GraphirError(f"constant {name!r} has only a digest (an abbreviated dump); re-create it with "
                               f"`graphir dump --full-constants`")
        a = _array(t)
        if self.spill is not None and a.nbytes >= EXTERNAL_MIN_BYTES and _raw_layout(a):
            # Straight from the array to the data file: no raw_data copy in the proto, however large.
            p.name, p.data_type = name, dtype_to_onnx(t.dtype)
            p.dims.extend(a.shape)
            loc, off = self.spill(np.ascontiguousarray(a))
            _set_external(p, loc, off, a.nbytes)
            return
        p.CopyFrom(numpy_helper.from_array(a, name))
        if self.spill is not None and len(p.raw_data) >= EXTERNAL_MIN_BYTES:
            loc, off = self.spill(p.raw_data)
            n = len(p.raw_data)
            p.ClearField("raw_data")
            _set_external(p, loc, off, n)

    def tensor_pieces(self, t: Tensor, name: str) -> list:
        """``t`` as TensorProto wire pieces (see "streaming the file"): a large raw payload is a piece of
        its own, the buffer that already holds it; anything else is serialized as :meth:`tensor` fills it."""
        pieces = None
        if t.nbytes >= STREAM_MIN_BYTES:
            if _kept(t):
                p = t.encoded[1]
                if p.HasField("raw_data") and not _is_external(p):
                    pieces = _kept_pieces(p, name, t._array)  # the array only if decoded: never decode here
            elif self.spill is None and not t.digest_only:
                pieces = _array_pieces(_array(t), name)
        if pieces is None:
            p = TensorProto()
            self.tensor(t, name, p)
            pieces = [p.SerializeToString()]
        return pieces

    def attribute(self, node: Node, key: str, v, a) -> None:
        """Fill AttributeProto ``a`` (empty, in place) with ``node``'s attribute ``key``."""
        kind = node.meta.get("onnx.attr_types", {}).get(key)
        if kind is None:
            kind = attr_type(node, key)
            kind = int(kind.value) if kind is not None else self._guess(v)
        a.name, a.type = key, kind
        if kind == A.FLOAT:
            a.f = float(v)
        elif kind == A.INT:
            a.i = dtype_to_onnx(v) if isinstance(v, DType) else int(v)
        elif kind == A.STRING:
            a.s = v.encode() if isinstance(v, str) else bytes(v)
        elif kind == A.TENSOR:
            self.tensor(v, self._tensor_name(v), a.t)
        elif kind == A.GRAPH:
            self.graph_proto(v.graph, [self.name(c) for c in v.captures], into=a.g)
        elif kind == A.FLOATS:
            a.floats.extend(float(x) for x in v)
        elif kind == A.INTS:
            a.ints.extend(dtype_to_onnx(x) if isinstance(x, DType) else int(x) for x in v)
        elif kind == A.STRINGS:
            a.strings.extend(x.encode() if isinstance(x, str) else bytes(x) for x in v)
        elif kind == A.TENSORS:
            for x in v:
                self.tensor(x, self._tensor_name(x), a.tensors.add())
        elif kind == A.SPARSE_TENSOR:
            a.sparse_tensor.ParseFromString(v)
        elif kind == A.TYPE_PROTO:
            a.tp.ParseFromString(v)
        elif kind == A.SPARSE_TENSORS:
            a.sparse_tensors.extend(SparseTensorProto.FromString(x) for x in v)
        elif kind == A.TYPE_PROTOS:
            a.type_protos.extend(TypeProto.FromString(x) for x in v)
        else:
            raise GraphirError(f"node {node.name!r}: cannot write attribute {key!r} of kind {kind}")

    @staticmethod
    def _tensor_name(t: Tensor) -> str:
        return t.encoded[1].name if t.encoded is not None and t.encoded[0] == "onnx" else ""

    @staticmethod
    def _guess(v) -> int:
        if isinstance(v, (bool, int, DType)):
            return A.INT
        if isinstance(v, float):
            return A.FLOAT
        if isinstance(v, (str, bytes)):
            return A.STRING
        if isinstance(v, Tensor):
            return A.TENSOR
        if isinstance(v, Subgraph):
            return A.GRAPH
        if isinstance(v, (list, tuple)):
            first = v[0] if v else 0
            return {A.INT: A.INTS, A.FLOAT: A.FLOATS, A.STRING: A.STRINGS, A.TENSOR: A.TENSORS}.get(
                _Writer._guess(first), A.INTS)
        raise GraphirError(f"cannot write attribute value of type {type(v).__name__} to ONNX")

    # ------------------------------------------------------------------ value infos
    def value_info(self, name: str, v: Value, orig: Optional[bytes], vi, *, symbolic: bool = False) -> None:
        """Fill ``vi`` (empty, in place) as ``name``'s ValueInfoProto: the original one while it still
        describes ``v``, else one from ``v``'s type. With ``symbolic`` (a graph input new to ONNX), unknown
        dims get names (``<name>_dim<i>``): ONNX Runtime propagates a named dim through the graph and can
        then prove that two tensors have the same size (e.g. to accumulate a residual sum in place), which it
        cannot for anonymous dims."""
        variant = v.dtype.name == "variant"
        if orig is not None:
            vi.MergeFromString(orig)
            if vi.name == name and (not vi.HasField("type") or _compatible(vi.type, v.type)):
                return
            vi.name = name
            if variant:
                return
        else:
            vi.name = name
            if variant:
                vi.type.CopyFrom(TypeProto())
                return
        dims = None if v.shape.dims is None else list(v.shape.dims)
        if symbolic and dims is not None:
            dims = [f"{name}_dim{i}" if d is None else d for i, d in enumerate(dims)]
        vi.type.CopyFrom(helper.make_tensor_type_proto(dtype_to_onnx(v.dtype), dims))

    # ------------------------------------------------------------------ graphs
    def graph_proto(self, g: Graph, capture_names: list[str], into=None):
        """``g`` as a GraphProto, written into ``into`` when given (the model's own graph field: building it
        elsewhere and copying it in would copy every weight once more)."""
        self.scopes.append(set())
        try:
            return self._graph_proto(g, capture_names, into)
        finally:
            self.scopes.pop()

    def _graph_proto(self, g: Graph, capture_names: list[str], into=None):
        gp = GraphProto() if into is None else into
        gp.name = g.name
        for c, n in zip(g.captures, capture_names):
            self.names[id(c)] = n
        io = g.meta.get("onnx.io", {})
        defaults = g.attrs.get("onnx.input_defaults", {})
        port_args = [p.value for p in g.inputs if p.value.is_argument]
        args = port_args + [a for a in g.arguments if all(a is not b for b in port_args)]
        for a in args:
            n = self.define(a, a.name)
            self.value_info(n, a, io.get(("in", n)), gp.input.add(), symbolic=True)
        stream = self.stream if len(self.scopes) == 1 else None  # the main graph's, when save() streams

        def initializer(t: Tensor, name: str) -> None:
            if stream is None:
                self.tensor(t, name, gp.initializer.add())
            else:
                stream.extend(_field(_INIT_TAG, self.tensor_pieces(t, name)))

        for k, v in g.initializers.items():
            name = self.define(v, k)
            enc = v.const.encoded
            if enc is not None and enc[0] == "onnx.sparse" and enc[1].values.name == name:
                gp.sparse_initializer.add().CopyFrom(enc[1])  # untouched: as sparse as it came
            else:
                initializer(v.const, name)
        for k, t in defaults.items():
            initializer(t, k)
        for n in _stable_topo(g):
            nd = gp.node.add()
            extra = n.meta.get("onnx.node_extra")
            if extra:
                nd.MergeFromString(extra)
            domain, op = split_op(n.op_type) if n.domain == DOMAIN else (n.domain, n.op_type)
            if n.domain != DOMAIN:
                raise GraphirError(f"node {n.name!r} is a {n.domain} op; only onnx graphs can be written as ONNX")
            nd.op_type = op
            if domain or n.meta.get("onnx.domain_set"):
                nd.domain = domain
            name = n.meta.get("onnx.name", n.name)
            if name is not None:
                nd.name = name
            nd.input.extend("" if v is None else self.name(v) for v in n.inputs)
            for k, v in n.attrs.items():
                self.attribute(n, k, v, nd.attribute.add())
            absent = set(n.meta.get("onnx.absent_outputs", ()))
            for i, v in enumerate(n.outputs):
                nd.output.append("" if i in absent else self.define(v))
            nd.output.extend([""] * n.meta.get("onnx.trailing_outputs", 0))
        for p in g.outputs:
            vname = self.name(p.value)
            if vname != p.name:
                # The output keeps its name: an Identity bridges from the value that now computes it.
                ident = NodeProto(op_type="Identity", input=[vname], output=[p.name],
                                  name=self._fresh_node_name(g, p.name))
                if self.taken(p.name):
                    raise GraphirError(f"graph output {p.name!r} clashes with another value of that name")
                self.scopes[-1].add(p.name)
                gp.node.append(ident)
            self.value_info(p.name, p.value, io.get(("out", p.name)), gp.output.add())
        by_name = {}
        for v in list(g.arguments) + list(g.initializers.values()) + [o for n in g.nodes() for o in n.outputs]:
            if id(v) in self.names:
                by_name.setdefault(self.names[id(v)], v)
        for name, orig in g.meta.get("onnx.value_info", {}).items():
            v = by_name.get(name)
            if v is not None:
                self.value_info(name, v, orig, gp.value_info.add())
        if "onnx.doc_string" in g.attrs:
            gp.doc_string = g.attrs["onnx.doc_string"]
        if "onnx.graph_extra" in g.attrs:
            gp.MergeFromString(g.attrs["onnx.graph_extra"])
        return gp

    @staticmethod
    def _fresh_node_name(g: Graph, base: str) -> str:
        return g.unique_name(base + "/output")


def _ir_version(graph: Graph, opsets: list) -> int:
    v = graph.attrs.get("onnx.ir_version")
    return int(v) if v else max(7, helper.find_min_ir_version_for(opsets))


def to_model(graph: Graph, *, external: str = "inline", _writer: Optional[_Writer] = None):
    """The ModelProto of an onnx graph. ``external="inline"`` reads external tensors into the proto
    (for running it in memory); ``"keep"`` keeps their references (for :func:`save`)."""
    if not is_onnx_graph(graph):
        raise GraphirError("this graph is not an ONNX graph (no onnx op set import); writing other graphs as "
                           "ONNX is not supported")
    w = _writer or _Writer(graph, external)
    a = graph.attrs
    m = ModelProto()
    order = a.get("onnx.opset_order") or ([""] * (DOMAIN in graph.opset_imports)
                                          + [d for d in graph.opset_imports if d != DOMAIN])
    for d in order:
        key = DOMAIN if d in ("", "ai.onnx") else d
        if key in graph.opset_imports:
            m.opset_import.append(OperatorSetIdProto(domain=d, version=int(graph.opset_imports[key])))
    m.ir_version = _ir_version(graph, list(m.opset_import))
    for f, key in (("producer_name", "onnx.producer_name"), ("producer_version", "onnx.producer_version"),
                   ("domain", "onnx.model_domain"), ("doc_string", "onnx.model_doc_string")):
        if key in a:
            setattr(m, f, a[key])
    if "onnx.model_version" in a:
        m.model_version = int(a["onnx.model_version"])
    for k, v in a.get("onnx.metadata_props", []):
        m.metadata_props.append(StringStringEntryProto(key=k, value=v))
    w.graph_proto(graph, [], into=m.graph)
    for b in a.get("onnx.functions", []):
        m.functions.append(FunctionProto.FromString(b))
    if "onnx.model_extra" in a:
        m.MergeFromString(a["onnx.model_extra"])
    return m


def to_model_named(graph: Graph, *, external: str = "inline"):
    """:func:`to_model` and the name each value got in it (``id(value) -> name``): a value may be renamed
    to clash with nothing, so a reader of the proto maps its results back through this."""
    w = _Writer(graph, external)
    return to_model(graph, external=external, _writer=w), w.names


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _tensors(g: Graph):
    """Every constant of ``g`` and its bodies: initializers, input defaults and tensor attributes."""
    yield from (v.const for v in g.initializers.values())
    yield from g.attrs.get("onnx.input_defaults", {}).values()
    for n in g.nodes():
        for v in n.attrs.values():
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, Tensor):
                    yield x
                elif isinstance(x, Subgraph):
                    yield from _tensors(x.graph)


def _hard_link(src: str, tmp: str) -> bool:
    """Put a hard link to ``src`` at ``tmp`` (an empty temporary); False (``tmp`` left as it was) where the
    file system refuses (another device, no permission)."""
    try:
        os.unlink(tmp)
        os.link(src, tmp)
        return True
    except OSError:
        if not os.path.exists(tmp):
            open(tmp, "wb").close()
        return False


def _align(f, n: int) -> None:
    """Pad the data file ``f`` so the next tensor starts at a multiple of ``n`` bytes."""
    pad = -f.tell() % n
    if pad:
        f.write(b"\0" * pad)


def save(graph: Graph, path: str, *, link_external: bool = False, **kwargs) -> None:
    """Write ``graph`` to ``path`` (``.onnx``) atomically, with its external data files beside it.

    Memory stays about one copy of what changed: kept external tensors are references (their files are
    copied by the kernel), new tensors are written from their arrays into the data file, and the model proto
    holds no weight of an external-data model. ``link_external`` hard-links kept data files instead of
    copying them where the file system allows (for a temporary model that only ONNX Runtime reads; it
    refuses symbolic links that leave the model's directory)."""
    from .atomic import atomic_files, preallocate

    path = os.fspath(path)
    out_dir = os.path.dirname(os.path.abspath(path))
    sources, new_bytes, all_bytes = set(), 0, 0
    kept: dict[str, set] = {}  # kept data file (absolute) -> its location in the output
    live: dict[str, set] = {}  # kept data file -> the (offset, length) spans its kept tensors use
    for t in _tensors(graph):
        enc = t.encoded
        if enc is not None and enc[0] == "onnx" and _is_external(enc[1]):
            info = _ext_info(enc[1])
            src = os.path.abspath(os.path.join(enc[2], info["location"]))
            sources.add(src)
            if _kept(t):
                kept.setdefault(src, set()).add(os.path.abspath(os.path.join(out_dir, info["location"])))
                live.setdefault(src, set()).add((int(info.get("offset") or 0), int(info.get("length") or 0)))
                continue
        all_bytes += t.nbytes
        if not _kept(t) and t.nbytes >= EXTERNAL_MIN_BYTES:
            new_bytes += t.nbytes
    # A kept file whose tensors were mostly replaced is not copied whole, dead bytes and all: its live
    # tensors move to the new data file. (An untouched model uses what the input used: its files stay.)
    used = graph.meta.get("onnx.data_files", {})
    compact = set() if link_external else {
        src for src, spans in live.items() if 2 * sum(n for _, n in spans) < used.get(src, os.path.getsize(src))}
    kept_dst = {d for src, dsts in kept.items() if src not in compact for d in dsts}
    spill = bool(compact) or bool(kept_dst) and new_bytes > 0 or all_bytes > PROTO_LIMIT
    # The new data file must not land on a kept file's place in the output, nor on any data file of the
    # input model (the output may sit next to it), whether or not the graph still reads it.
    taken = sources | kept_dst | set(graph.meta.get("onnx.data_files", ()))
    base = os.path.basename(path)
    data_name, i = base + ".data", 0
    while os.path.abspath(os.path.join(out_dir, data_name)) in taken:
        i += 1
        data_name = f"{base}.{i}.data"
    w = _Writer(graph, "keep")
    w.compact = compact
    w.stream = []
    try:
        with atomic_files() as add:
            data_file = None
            if spill:
                data_file = open(add(os.path.join(out_dir, data_name)), "wb")

                def put(raw) -> tuple[str, int]:
                    buf = raw.reshape(-1).view(np.uint8) if isinstance(raw, np.ndarray) else memoryview(raw)
                    # Page-aligned large tensors can be memory-mapped by readers (ONNX Runtime, graphir).
                    _align(data_file, 4096 if buf.nbytes >= (64 << 10) else 64)
                    off = data_file.tell()
                    data_file.write(buf)
                    return data_name, off

                w.spill = put
            try:
                model = to_model(graph, external="keep", _writer=w)
            finally:
                if data_file is not None:
                    data_file.close()
            for loc, src_dir in w.ext_sources.items():
                src, dst = os.path.join(src_dir, loc), os.path.join(out_dir, loc)
                if _same_file(src, dst):
                    continue  # already in place: the output sits next to the input's data
                if link_external and _hard_link(src, add(dst)):
                    continue
                shutil.copyfile(src, add(dst))  # in the kernel where it can (sendfile): no buffer here
            try:
                pieces = _model_pieces(model, w.stream)
            except ValueError as e:
                raise GraphirError(f"{path}: model too large to serialize: {one_line(e)}") from None
            size = sum(map(len, pieces))
            if size > PROTO_MAX:
                raise GraphirError(f"{path}: model too large to serialize ({size} bytes; protobuf's limit is 2 GB)")
            with open(add(path), "wb") as fo:
                preallocate(fo, size, path)
                for piece in pieces:
                    fo.write(piece)
    except OSError as e:
        raise GraphirError(f"{path}: cannot write: {one_line(e)}") from None
