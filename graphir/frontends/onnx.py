"""The ONNX frontend: ``.onnx`` files and ``ModelProto`` objects into the IR, losslessly.

A model is read without its external data (tensors stay on disk until a pass needs their values, and then
are memory-mapped, not read: see :func:`external_array`), checked
(op set >= 13, a schema for every op, external-data files present, ``onnx.checker`` with ``full_check``),
and typed by ``onnx.shape_inference.infer_shapes(data_prop=True)``. The checker and shape inference run
on skeletons of the model whose large embedded tensors are stubs, so neither re-reads the file nor
copies the weights (the stubbed tensors' byte counts are checked here instead). Graph inputs become
arguments, initializers initializer values, ``If``/``Loop``/``Scan`` bodies :class:`~graphir.ir.Subgraph`
attributes whose captures are the outer values the body reads by name. Everything the IR has no field for is kept
for the backend: model fields and local functions as ``onnx.*`` graph attributes (printed), per-node
extras (doc strings, metadata, an empty or duplicate node name) in ``Node.meta``, and the original
``ValueInfoProto`` of inputs, outputs and value_info entries (symbolic dims, doc strings) in
``Graph.meta``.
"""
from __future__ import annotations

import math
import mmap
import os
import sys
import weakref
from functools import lru_cache
from typing import Callable, Optional, Sequence

import numpy as np

from ..dialects.onnx import DOMAIN, VARIANT, dtype_from_onnx, join_op, schema
from ..errors import ModelLoadError, describe, one_line
from ..ir import Graph, Port, Value
from ..ir.types import Shape, Subgraph, Tensor, TensorType

MIN_OPSET = 13
# Embedded tensors above this many bytes are hidden from shape inference (marked external) while it runs.
SKELETON_BYTES = 1 << 16
# External tensors from this many bytes up are decoded as views of a memory-mapped file, not read.
MMAP_MIN_BYTES = 1 << 12
_LITTLE = sys.byteorder == "little"
_EXTERNAL = 1  # TensorProto.EXTERNAL, the data_location of a tensor whose bytes are in a file (onnx.proto3)

# Fields with an IR home of their own; any others are kept verbatim (serialized) so nothing is lost.
_MODEL_CORE = frozenset({"graph", "opset_import", "functions", "ir_version", "producer_name", "producer_version",
                         "domain", "model_version", "doc_string", "metadata_props"})
_GRAPH_CORE = frozenset({"node", "name", "input", "output", "initializer", "value_info", "doc_string",
                         "sparse_initializer"})
_NODE_CORE = frozenset({"input", "output", "name", "op_type", "domain", "attribute"})
_MODEL_STR_ATTRS = ("producer_name", "producer_version", "domain", "doc_string")


def is_onnx_path(model) -> bool:
    return isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".onnx")


def _extra(msg, core: frozenset) -> Optional[bytes]:
    """``msg`` without its ``core`` fields, serialized; None when nothing else is set."""
    for name, repeated in _other_fields(msg.DESCRIPTOR, core):
        if len(getattr(msg, name)) if repeated else msg.HasField(name):
            break
    else:
        return None
    out = type(msg)()
    for name, repeated in _other_fields(msg.DESCRIPTOR, core):
        if repeated:
            getattr(out, name).extend(getattr(msg, name))
        elif msg.HasField(name):
            _copy_field(out, name, getattr(msg, name))
    return out.SerializeToString(deterministic=True)


@lru_cache(maxsize=None)
def _other_fields(descriptor, core: frozenset) -> tuple:
    """(name, is repeated) of the message type's fields outside ``core``: asking each of a node's few
    such fields is several times cheaper than listing its set fields."""
    def repeated(f) -> bool:  # protobuf 6 dropped ``label`` for ``is_repeated``
        return f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED

    return tuple((f.name, repeated(f)) for f in descriptor.fields if f.name not in core)


# ------------------------------------------------------------------------------------------ reading
def _read(model) -> tuple:
    """(ModelProto, base directory for external data, path or None, name for messages)."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(model, onnx.ModelProto):
        return model, os.getcwd(), None, "ONNX model"
    if isinstance(model, (bytes, bytearray)):
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(bytes(model))
        except DecodeError as e:
            raise ModelLoadError(f"not a readable ONNX model ({describe(e)})") from None
        return proto, os.getcwd(), None, "ONNX model"
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise ModelLoadError(f"{path}: no such file")
    try:
        proto = onnx.load(path, load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise ModelLoadError(f"{path}: not a readable ONNX model ({describe(e, 160)})") from None
    return proto, os.path.dirname(os.path.abspath(path)), path, path


class _Scan:
    """One walk over a model: its graphs (the main graph, then each body depth-first, as they appear) and
    every TensorProto (initializers and tensor attributes, in functions too). Loading reads both several
    times; walking a large model's nodes in Python is what costs."""

    def __init__(self, proto):
        from onnx import AttributeProto as A, TensorProto

        self.graphs: list = []
        self.tensors: list = []
        # Depth first, bodies in the order they appear, iteratively (a recursive closure would be a
        # reference cycle holding every tensor until the cyclic GC runs).
        stack = [proto.graph]
        while stack:
            g = stack.pop()
            self.graphs.append(g)
            self.tensors.extend(g.initializer)
            bodies = []
            for nd in g.node:
                for a in nd.attribute:
                    k = a.type
                    if k == A.GRAPH:
                        bodies.append(a.g)
                    elif k == A.GRAPHS:
                        bodies.extend(a.graphs)
                    elif k == A.TENSOR:
                        self.tensors.append(a.t)
                    elif k == A.TENSORS:
                        self.tensors.extend(a.tensors)
            stack.extend(reversed(bodies))
        for f in proto.functions:
            for nd in f.node:
                for a in nd.attribute:
                    if a.type == A.TENSOR:
                        self.tensors.append(a.t)
                    elif a.type == A.TENSORS:
                        self.tensors.extend(a.tensors)
        self.external = [t for t in self.tensors if t.data_location == TensorProto.EXTERNAL]


def _opsets(proto) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in proto.opset_import:
        out["" if o.domain == "ai.onnx" else o.domain] = o.version
    return out


# Element types whose raw bytes are itemsize bytes per element (not packed below a byte, not strings):
# a large embedded tensor of one of these may be stood in for by a stub while ONNX checks and types the
# model, with its byte count checked here.
@lru_cache(maxsize=None)
def _plain_dtype(data_type: int) -> Optional[np.dtype]:
    from onnx import helper

    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(data_type))
    except (KeyError, ValueError, TypeError):
        return None
    packed = {"int4", "uint4", "int2", "uint2", "float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn"}
    return None if dt.kind in "OSUV" or dt.name in packed else dt


@lru_cache(maxsize=None)
def _typed_field(data_type: int) -> Optional[tuple[str, np.dtype]]:
    """(field, dtype) where ONNX stores a ``data_type`` tensor's values unconverted in a typed field of its
    own element type (FLOAT in float_data, INT64 in int64_data, ...); None where the field holds another
    storage type (FLOAT16 in int32_data, ...), which numpy_helper.to_array converts."""
    from onnx import helper

    try:
        if helper.tensor_dtype_to_storage_tensor_dtype(data_type) != data_type:
            return None
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(data_type))
        field = helper.tensor_dtype_to_field(data_type)
    except (KeyError, ValueError, TypeError):
        return None
    return None if dt.kind in "OSUV" else (field, dt)


def _plain_itemsize(data_type: int) -> Optional[int]:
    dt = _plain_dtype(data_type)
    return None if dt is None else dt.itemsize


def _skeletons(proto):
    """(the model for shape inference, the model for the checker): ``proto`` with each large embedded
    initializer (over SKELETON_BYTES, raw bytes of a plain type) stood in for by a stub, so neither copies
    the weights. Inference gets the stub marked external (its name, type and dims stay: they type the
    graph); the checker gets it empty (dims [0], which the checker accepts without data) and
    :func:`_check_stubbed` checks what the checker would have of the real one. ``proto`` is untouched."""
    from onnx import ModelProto, TensorProto

    big = set()
    for i, t in enumerate(proto.graph.initializer):
        if t.HasField("raw_data") and t.data_location != TensorProto.EXTERNAL:
            size = _plain_itemsize(t.data_type)
            if size is not None and size * math.prod(t.dims) > SKELETON_BYTES:
                big.add(i)
    if not big:
        return proto, proto, ()
    infer_m, check_m = ModelProto(), ModelProto()
    for fd, v in proto.ListFields():
        if fd.name != "graph":
            _copy_field(infer_m, fd.name, v)
    for fd, v in proto.graph.ListFields():
        if fd.name != "initializer":
            _copy_field(infer_m.graph, fd.name, v)
    stubbed = []
    for i, t in enumerate(proto.graph.initializer):
        s = infer_m.graph.initializer.add()
        if i not in big:
            s.CopyFrom(t)
            continue
        s.name, s.data_type = t.name, t.data_type
        s.dims.extend(t.dims)
        s.data_location = TensorProto.EXTERNAL
        e = s.external_data.add()
        e.key, e.value = "location", "graphir-skeleton"
        stubbed.append(t)
    check_m.CopyFrom(infer_m)
    for i in big:
        s = check_m.graph.initializer[i]
        s.ClearField("data_location")
        s.ClearField("external_data")
        del s.dims[:]
        s.dims.append(0)
    return infer_m, check_m, stubbed


def _copy_field(msg, name: str, value) -> None:
    f = getattr(msg, name)
    if hasattr(f, "extend") and not isinstance(f, (str, bytes)):
        f.extend(value)
    elif hasattr(f, "CopyFrom"):
        f.CopyFrom(value)
    else:
        setattr(msg, name, value)


_VALUE_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _check_stubbed(stubbed, where: str) -> None:
    """What the checker checks of an embedded tensor's data, for the tensors :func:`_skeletons` stubbed:
    raw_data is its only value field and holds exactly its shape's bytes."""
    for t in stubbed:
        others = [f for f in _VALUE_FIELDS if len(getattr(t, f))]
        if others:
            raise ModelLoadError(f"{where}: fails the ONNX checker: tensor {t.name!r} has raw_data and "
                                 f"{others[0]}; a tensor has one value field")
        need = _plain_itemsize(t.data_type) * math.prod(t.dims)
        got = len(t.raw_data)
        if got != need:
            raise ModelLoadError(f"{where}: fails the ONNX checker: tensor {t.name!r} has {got} bytes of "
                                 f"raw_data; its shape and type need {need}")


def check(proto, base_dir: str, path: Optional[str], where: str, scan: Optional[_Scan] = None,
          skeleton=None) -> None:
    """Reject what graphir cannot read faithfully: no graph, op set < 13, ops without a schema, missing
    external data, anything ``onnx.checker`` rejects (its full check, strict shape inference, is
    :func:`infer`'s). One line each. ``skeleton`` is :func:`_skeletons`' result, when the caller has it."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo

    if not proto.HasField("graph") or proto.ir_version <= 0:
        raise ModelLoadError(f"{where}: not an ONNX model (no {'graph' if proto.ir_version > 0 else 'IR version'})")
    opsets = _opsets(proto)
    v = opsets.get("")
    if v is not None and v < MIN_OPSET:
        raise ModelLoadError(f"{where}: op set {v} is below {MIN_OPSET}, the oldest graphir reads; convert it "
                             f"with onnx.version_converter.convert_version(model, {MIN_OPSET})")
    scan = scan or _Scan(proto)
    local = {(f.domain, f.name) for f in proto.functions}
    known: set = set()
    for g in scan.graphs:
        for nd in g.node:
            key = (nd.domain, nd.op_type)
            if key in known or key in local:
                continue
            dom = "" if nd.domain == "ai.onnx" else nd.domain
            if dom not in opsets:
                raise ModelLoadError(f"{where}: node {nd.name or nd.op_type!r} uses domain {nd.domain!r}, which "
                                     f"the model does not import")
            if schema(join_op(dom, nd.op_type), opsets[dom]) is None:
                what = f"op {nd.op_type!r}" + (f" of domain {nd.domain!r}" if nd.domain else "")
                raise ModelLoadError(f"{where}: node {nd.name or nd.op_type!r}: ONNX has no schema for {what} at "
                                     f"op set {opsets[dom]} (and the model defines no such function)")
            known.add(key)
    for t in scan.external:
        info = ExternalDataInfo(t)
        loc = os.path.join(base_dir, info.location)
        if not os.path.isfile(loc):
            raise ModelLoadError(f"{where}: external data file {info.location!r} of tensor {t.name!r} is "
                                 f"missing (looked in {base_dir})")
        end = (info.offset or 0) + (info.length or 0)
        if end > os.path.getsize(loc):
            raise ModelLoadError(f"{where}: external data file {info.location!r} is too short for tensor "
                                 f"{t.name!r} (needs {end} bytes)")
    # The checker without its full check: the full check is strict, type-checking shape inference, which
    # infer() runs anyway (with data propagation) and reports as the checker would. A model with external
    # data is checked from its file (the checker resolves data locations against the file's directory);
    # any other on its stubbed skeleton, so the checker neither re-reads the file nor copies the weights.
    stubbed = ()
    try:
        if scan.external and path is not None:
            onnx.checker.check_model(path)
        else:
            _, check_m, stubbed = skeleton or _skeletons(proto)
            onnx.checker.check_model(check_m)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ModelLoadError(f"{where}: fails the ONNX checker: {one_line(e, 300)}") from None
    except ValueError as e:  # e.g. a model over 2 GB given in memory
        raise ModelLoadError(f"{where}: cannot be checked: {one_line(e, 300)}") from None
    _check_stubbed(stubbed, where)


def infer(proto, skeleton=None):
    """``infer_shapes(data_prop=True)`` on ``proto``'s skeleton (:func:`_skeletons`: large embedded
    tensors stood in for by external stubs, so the weights are not copied); returns the inferred copy."""
    import onnx

    infer_m = (skeleton or _skeletons(proto))[0]
    try:
        return onnx.shape_inference.infer_shapes(infer_m, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as e:
        raise ModelLoadError(f"fails the ONNX checker (shape inference): {one_line(e, 300)}") from None


# ------------------------------------------------------------------------------------------ values
def type_from_proto(tp) -> TensorType:
    """A TypeProto as an IR type: tensors by element type and dims (symbolic dims unknown), anything else
    (sequences, optionals, maps, sparse tensors) as ``variant`` of unknown shape."""
    if tp.HasField("tensor_type"):
        tt = tp.tensor_type
        dt = dtype_from_onnx(tt.elem_type) if tt.elem_type else VARIANT
        if not tt.HasField("shape"):
            return TensorType(dt, Shape(None))
        return TensorType(dt, Shape(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim))
    return TensorType(VARIANT, Shape(None))


# External data files mapped into memory, by file identity: one mapping (and one file descriptor) per file
# while any constant decoded from it is alive; a file replaced on disk is a new key, never a stale view.
_MAPS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def _mapped(path: str) -> mmap.mmap:
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    m = _MAPS.get(key)
    if m is None:
        with open(path, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        _MAPS[key] = m
    return m


def external_bytes(t, base_dir: str) -> memoryview:
    """The stored bytes of external TensorProto ``t``, as a view of its memory-mapped file (no copy)."""
    from onnx.external_data_helper import ExternalDataInfo

    info = ExternalDataInfo(t)
    view = memoryview(_mapped(os.path.join(base_dir, info.location)))
    off = info.offset or 0
    return view[off:off + info.length] if info.length else view[off:]


def external_array(t, base_dir: str) -> Optional[np.ndarray]:
    """The external data of TensorProto ``t`` as a read-only array over a memory map of its file: pages are
    read when touched and stay the kernel's to drop (file-backed), so a large model is not copied into
    memory. None where the bytes are not the array's own layout (packed sub-byte types, strings, a
    big-endian host, no recorded length) or the tensor is small; :func:`numpy_helper.to_array` reads those."""
    from onnx import helper
    from onnx.external_data_helper import ExternalDataInfo

    if sys.byteorder != "little":
        return None
    info = ExternalDataInfo(t)
    dt = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
    n = int(np.prod(t.dims, dtype=np.int64))
    if dt.kind in "OSU" or not info.length or info.length != n * dt.itemsize or info.length < MMAP_MIN_BYTES:
        return None
    m = _mapped(os.path.join(base_dir, info.location))
    return np.frombuffer(m, dt, count=n, offset=info.offset or 0).reshape(tuple(t.dims))


def tensor_from_proto(t, base_dir: str) -> Tensor:
    """An IR constant that decodes ``t`` only when asked (external data as a memory map, see
    :func:`external_array`), and keeps ``t`` itself as its encoded form so an untouched constant is written
    back as it was."""
    def decode():
        if t.data_location == _EXTERNAL:
            a = external_array(t, base_dir)
        elif t.HasField("raw_data"):
            # A plain type's raw bytes are the array (little-endian): read as numpy_helper.to_array reads
            # them, without its per-call dtype table lookups (a model's many small shape constants).
            dt = _plain_dtype(t.data_type) if _LITTLE else None
            a = None if dt is None else np.frombuffer(t.raw_data, dt).reshape(tuple(t.dims))
        else:
            # Values in a typed field of their own element type (float_data of a FLOAT, ...).
            typed = _typed_field(t.data_type)
            a = None if typed is None else np.array(getattr(t, typed[0]), typed[1]).reshape(tuple(t.dims))
        if a is None:
            from onnx import numpy_helper

            a = numpy_helper.to_array(t, base_dir=base_dir)
        return a

    return Tensor(dtype_from_onnx(t.data_type), Shape(t.dims), decode=decode, encoded=("onnx", t, base_dir))


def sparse_from_proto(sp, base_dir: str) -> Tensor:
    """A sparse initializer as a dense IR constant (decoded when asked) that is written back sparse while
    untouched: its encoded form is the SparseTensorProto."""
    from onnx import numpy_helper

    def decode():
        values = numpy_helper.to_array(sp.values, base_dir=base_dir)
        dense = np.zeros(tuple(sp.dims), values.dtype)
        idx = numpy_helper.to_array(sp.indices, base_dir=base_dir) if sp.HasField("indices") else np.zeros(0, int)
        if idx.ndim == 2:  # coordinates, one row per value
            dense[tuple(idx.T)] = values
        else:  # linear indices into the flattened tensor
            dense.reshape(-1)[idx] = values
        return dense

    return Tensor(dtype_from_onnx(sp.values.data_type), Shape(sp.dims), decode=decode,
                  encoded=("onnx.sparse", sp, base_dir))


@lru_cache(maxsize=None)
def _attribute_proto():
    """onnx's AttributeProto, imported once (it is asked for per attribute; ``onnx`` loads lazily)."""
    from onnx import AttributeProto

    return AttributeProto


def attr_value(a, base_dir: str, subgraph: Callable):
    """An AttributeProto's value in IR form (subgraphs through ``subgraph(GraphProto, attr name)``)."""
    A = _attribute_proto()
    k = a.type
    if k == A.FLOAT:
        return float(a.f)
    if k == A.INT:
        return int(a.i)
    if k == A.STRING:
        return _text(a.s)
    if k == A.TENSOR:
        return tensor_from_proto(a.t, base_dir)
    if k == A.GRAPH:
        return subgraph(a.g, a.name)
    if k == A.FLOATS:
        return [float(x) for x in a.floats]
    if k == A.INTS:
        return [int(x) for x in a.ints]
    if k == A.STRINGS:
        return [_text(x) for x in a.strings]
    if k == A.TENSORS:
        return [tensor_from_proto(x, base_dir) for x in a.tensors]
    if k == A.SPARSE_TENSOR:
        return a.sparse_tensor.SerializeToString(deterministic=True)
    if k == A.TYPE_PROTO:
        return a.tp.SerializeToString(deterministic=True)
    if k == A.SPARSE_TENSORS:
        return [x.SerializeToString(deterministic=True) for x in a.sparse_tensors]
    if k == A.TYPE_PROTOS:
        return [x.SerializeToString(deterministic=True) for x in a.type_protos]
    raise ModelLoadError(f"attribute {a.name!r} has a kind graphir does not keep ({A.AttributeType.Name(k)})")


def _text(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(b)


# ------------------------------------------------------------------------------------------ graphs
class _Converter:
    def __init__(self, opsets: dict[str, int], base_dir: str, functions: set):
        # IR op set imports: "onnx" (the default domain) first, so an empty graph still names its dialect.
        self.opsets = {DOMAIN: opsets[""]} if "" in opsets else {}
        self.opsets.update((d, v) for d, v in opsets.items() if d != "")
        self.base_dir = base_dir
        self.functions = functions
        # TypeProto bytes -> TensorType: a model's values share few distinct types, and building one from
        # the proto's dims costs several times a lookup of its serialized form. (Types are immutable.)
        self._types: dict[bytes, TensorType] = {}

    def type_of(self, tp) -> TensorType:
        key = tp.SerializeToString()
        t = self._types.get(key)
        if t is None:
            t = self._types[key] = type_from_proto(tp)
        return t

    def graph(self, g, g_inf, outer: Optional[Callable[[str], Value]] = None) -> tuple[Graph, list[str]]:
        """Convert GraphProto ``g`` (types from its inferred twin ``g_inf``). In a body, names defined
        outside are resolved through ``outer`` and become captures; returns the graph and those names."""
        from onnx import AttributeProto as A

        graph = Graph(g.name)
        graph.opset_imports = dict(self.opsets)
        types = {}
        for vi in list(g_inf.value_info) + list(g_inf.input) + list(g_inf.output):
            if vi.HasField("type"):
                types[vi.name] = vi.type
        scope: dict[str, Value] = {}
        captured: list[str] = []

        def resolve(name: str) -> Value:
            v = scope.get(name)
            if v is not None:
                return v
            if outer is None:
                raise ModelLoadError(f"graph {g.name!r}: {name!r} is used but never defined")
            ov = outer(name)
            v = scope[name] = graph.add_capture(name, ov.type)
            captured.append(name)
            return v

        meta_io: dict = {}
        defaults = {}
        inits = {t.name: t for t in g.initializer}
        input_names = {vi.name for vi in g.input}
        for t in g.initializer:
            if t.name not in input_names:
                scope[t.name] = graph.add_initializer(t.name, tensor_from_proto(t, self.base_dir))
        ports_in = []
        for vi in g.input:
            # A body's inputs may be untyped in the file (Loop, Scan): inference types them in its twin.
            ty = self.type_of(types.get(vi.name, vi.type))
            scope[vi.name] = arg = graph.add_argument(vi.name, ty)
            ports_in.append(Port(vi.name, arg))
            meta_io[("in", vi.name)] = vi.SerializeToString(deterministic=True)
            if vi.name in inits:  # an input with a default value: still an input
                defaults[vi.name] = tensor_from_proto(inits[vi.name], self.base_dir)
        if defaults:
            graph.attrs["onnx.input_defaults"] = defaults
        for sp in g.sparse_initializer:
            # ONNX types it sparse_tensor(...), which only a few ops take: variant here, like other non-tensors.
            t = sparse_from_proto(sp, self.base_dir)
            scope[sp.values.name] = graph.add_initializer(sp.values.name, t, TensorType(VARIANT, t.shape))
        if g.doc_string:
            graph.attrs["onnx.doc_string"] = g.doc_string
        extra = _extra(g, _GRAPH_CORE)
        if extra:
            graph.attrs["onnx.graph_extra"] = extra

        unknown = TensorType(VARIANT, Shape(None))
        base_dir, functions = self.base_dir, self.functions
        for nd, nd_inf in zip(g.node, g_inf.node):
            ins = [None if n == "" else (scope.get(n) or resolve(n)) for n in nd.input]
            attrs = {}
            attr_types = {}
            for j, a in enumerate(nd.attribute):
                k = a.type
                if a.ref_attr_name:
                    raise ModelLoadError(f"node {nd.name!r}: attribute reference {a.ref_attr_name!r} outside a "
                                         f"function body")
                if k == A.GRAPH:
                    attrs[a.name] = self._subgraph(graph, a.g, nd_inf.attribute[j].g, resolve)
                elif k == A.GRAPHS:
                    raise ModelLoadError(f"node {nd.name!r}: attribute {a.name!r} holds a list of graphs, "
                                         f"which graphir does not read")
                else:
                    attrs[a.name] = attr_value(a, base_dir, None)
                attr_types[a.name] = k
            outs = list(nd.output)
            trailing = 0
            while outs and outs[-1] == "":
                outs.pop()
                trailing += 1
            out_types, out_names, absent = [], [], []
            for i, n in enumerate(outs):
                if n == "":
                    absent.append(i)
                    out_types.append(unknown)
                    out_names.append(None)
                    continue
                tp = types.get(n)
                out_types.append(unknown if tp is None else self.type_of(tp))
                out_names.append(n)
            domain, op = nd.domain, nd.op_type
            op_type = f"{domain}.{op}" if domain else op
            name = nd.name
            base = name or (outs[0] if outs and outs[0] else op)
            node = graph.add_node(op_type, ins, attrs, out_types, domain=DOMAIN, name=base,
                                  output_names=out_names)
            meta = node.meta
            if not name and not nd.HasField("name"):
                meta["onnx.name"] = None  # unset, not even ""
            elif node.name != name:
                meta["onnx.name"] = name
            if not domain and nd.HasField("domain"):
                meta["onnx.domain_set"] = True
            meta["onnx.attr_types"] = attr_types
            if absent:
                meta["onnx.absent_outputs"] = absent
            if trailing:
                meta["onnx.trailing_outputs"] = trailing
            if functions and (domain, op) in functions:
                meta["onnx.function"] = True
            ex = _extra(nd, _NODE_CORE)
            if ex:
                meta["onnx.node_extra"] = ex
            for v in node.outputs:
                if v._name is not None:
                    if v._name in scope:
                        raise ModelLoadError(f"graph {g.name!r}: value {v._name!r} is defined twice")
                    scope[v._name] = v
        ports_out = []
        for vi in g.output:
            ports_out.append(Port(vi.name, resolve(vi.name)))
            meta_io[("out", vi.name)] = vi.SerializeToString(deterministic=True)
        graph.inputs = ports_in
        graph.outputs = ports_out
        graph.meta["onnx.io"] = meta_io
        graph.meta["onnx.value_info"] = {vi.name: vi.SerializeToString(deterministic=True) for vi in g.value_info}
        return graph, captured

    def _subgraph(self, graph: Graph, g, g_inf, resolve) -> Subgraph:
        body, names = self.graph(g, g_inf, outer=resolve)
        return Subgraph(body, [resolve(n) for n in names])


def convert(proto, inferred, base_dir: str, scan: Optional[_Scan] = None) -> Graph:
    """The IR graph of a checked ModelProto (``inferred``: its shape-inferred copy or skeleton's)."""
    opsets = _opsets(proto)
    conv = _Converter(opsets, base_dir, {(f.domain, f.name) for f in proto.functions})
    graph, _ = conv.graph(proto.graph, inferred.graph)
    a = graph.attrs
    a["onnx.ir_version"] = int(proto.ir_version)
    for f in _MODEL_STR_ATTRS:
        if proto.HasField(f):
            a[f"onnx.model_{f}" if f in ("domain", "doc_string") else f"onnx.{f}"] = getattr(proto, f)
    if proto.HasField("model_version"):
        a["onnx.model_version"] = int(proto.model_version)
    if proto.metadata_props:
        a["onnx.metadata_props"] = [[p.key, p.value] for p in proto.metadata_props]
    order = [o.domain for o in proto.opset_import]
    canonical = [""] * ("" in opsets) + [d for d in order if d not in ("", "ai.onnx")]
    if order != canonical:
        a["onnx.opset_order"] = order
    if proto.functions:
        a["onnx.functions"] = [f.SerializeToString(deterministic=True) for f in proto.functions]
    extra = _extra(proto, _MODEL_CORE)
    if extra:
        a["onnx.model_extra"] = extra
    graph.meta["onnx.base_dir"] = base_dir
    # Every data file of the input (also those whose tensors a pass will replace: the backend must never
    # write over one, the output may sit next to the input), with the bytes the model uses of it.
    graph.meta["onnx.data_files"] = data_files(proto, base_dir, scan)
    return graph


def data_files(proto, base_dir: str, scan: Optional[_Scan] = None) -> dict[str, int]:
    """The external data files ``proto`` refers to (absolute paths), each with how many of its bytes the
    model's tensors use."""
    from onnx.external_data_helper import ExternalDataInfo

    spans: dict[str, set] = {}
    for t in (scan or _Scan(proto)).external:
        info = ExternalDataInfo(t)
        path = os.path.abspath(os.path.join(base_dir, info.location))
        spans.setdefault(path, set()).add((info.offset or 0, info.length or 0))
    return {p: sum(n for _, n in s) for p, s in sorted(spans.items())}


def _select(graph: Graph, inputs: Optional[Sequence[str]], outputs: Optional[Sequence[str]]) -> Graph:
    """Override the signature by value names (an inner value as an input cuts the graph there)."""
    from .signature import _unique

    def value(name, kind):
        try:
            return graph.value(name)
        except KeyError:
            raise ModelLoadError(f"unknown {kind} {name!r}: no value of that name in the graph") from None

    if outputs:
        graph.outputs = [Port(n, value(n, "output")) for n in outputs]
        _unique([p.value for p in graph.outputs], outputs, "output")
    if inputs:
        vals = [value(n, "input") for n in inputs]
        _unique(vals, inputs, "input")
        ports = []
        for n, v in zip(inputs, vals):
            if not v.is_argument:
                arg = graph.add_argument(n, v.type)
                graph.replace_all_uses_with(v, arg)
                if v.node is not None and v._name == n:
                    v._name = n + "/cut"  # its producer may survive (another output needs it)
                v = arg
            ports.append(Port(n, v))
        graph.inputs = ports
    live = graph.ancestors([p.value.node for p in graph.outputs if p.value.node is not None])
    graph.remove_nodes([n for n in graph.nodes() if n.name not in live])
    used = {id(p.value) for p in graph.outputs}
    for n in graph.nodes():
        used.update(id(v) for v in n.inputs if v is not None)
        used.update(id(v) for _, sg in n.subgraphs() for v in sg.captures)
    needed = [p for p in graph.inputs if id(p.value) in used or inputs]
    if inputs:
        missing = [a.name for a in graph.arguments if id(a) in used and all(p.value is not a for p in graph.inputs)]
        if missing:
            raise ModelLoadError(f"the outputs still depend on input {missing[0]!r}, which the given inputs "
                                 f"({', '.join(inputs)}) leave out")
    graph.inputs = needed
    keep = {id(p.value) for p in graph.inputs}
    graph.arguments[:] = [a for a in graph.arguments if id(a) in keep]
    for k, v in list(graph.initializers.items()):
        if id(v) not in used:
            graph.remove_initializer(v)
    return graph


def load(model, inputs: Optional[Sequence[str]] = None, outputs: Optional[Sequence[str]] = None) -> Graph:
    """Load an ONNX model (path, ``ModelProto`` or serialized bytes) into the IR."""
    proto, base_dir, path, where = _read(model)
    if not proto.HasField("graph"):
        check(proto, base_dir, path, where)  # says what is wrong
    scan = _Scan(proto)
    skeleton = _skeletons(proto)
    check(proto, base_dir, path, where, scan, skeleton)
    try:
        inferred = infer(proto, skeleton)
    except ModelLoadError as e:
        raise ModelLoadError(f"{where}: {e}") from None
    try:
        graph = convert(proto, inferred, base_dir, scan)
    except ModelLoadError as e:
        raise ModelLoadError(f"{where}: {e}") from None
    except ValueError as e:  # an element type graphir has no dtype for
        raise ModelLoadError(f"{where}: {one_line(e)}") from None
    if inputs or outputs:
        graph = _select(graph, inputs, outputs)
    return graph
