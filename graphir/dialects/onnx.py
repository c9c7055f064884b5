"""The ``onnx`` dialect: ONNX op knowledge from ``onnx.defs`` schemas, and how to build ONNX nodes.

Every ONNX node lives in the IR domain ``onnx``. An op of the default domain keeps its plain type
(``Conv``); an op of another ONNX domain is spelled ``<domain>.<Op>`` (``ai.onnx.ml.LinearClassifier``,
or a local function ``custom.MyFn``), which the printer quotes. ``graph.opset_imports`` maps ``onnx`` to
the default domain's op set version and other ONNX domains to theirs; op data is looked up in the schema
of that version (``onnx.defs.get_schema``): inputs and outputs with their options, type constraints for
:meth:`ONNXDialect.expected_input_dtypes`, attribute types, determinism, graph attributes (control flow).
The tables below hold only what the schemas do not say (commutativity, expansion, identity).

Constants are initializers (:meth:`ONNXDialect.make_constant`), placeholders graph arguments. onnx is
imported on first use.
"""
from __future__ import annotations

import weakref
from functools import lru_cache
from typing import Optional

from ..ir.core import Graph, Node, Value
from ..ir.dialect import Dialect, DialectError
from ..ir.registry import OpInfo
from ..ir.types import DType, Tensor, TensorType

DOMAIN = "onnx"

COMMUTATIVE = {"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal", "BitwiseAnd",
               "BitwiseOr", "BitwiseXor"}
IDENTITY_LIKE = {"Identity"}
# Ops whose output can be far larger than their inputs: constant folding keeps them symbolic when big.
EXPANDING = {"Expand", "Tile", "ConstantOfShape", "Pad", "Range", "Resize", "Upsample", "OneHot", "EyeLike",
             "CenterCropPad", "Col2Im"}
SHAPE_QUERIES = {"Size": "size"}  # Shape has start/end: the onnx rules fold it
# Graph attributes (subgraphs) and Constant itself are not evaluated by folding.
NOT_FOLDABLE = {"Constant"}
# Of the ops the schemas mark non-deterministic, those that are deterministic at inference (Dropout
# without training_mode is the identity) are still left to the onnx rules, not to folding or merging.


def split_op(op_type: str) -> tuple[str, str]:
    """``Conv`` -> ("", "Conv"); ``ai.onnx.ml.Scaler`` -> ("ai.onnx.ml", "Scaler")."""
    domain, _, op = op_type.rpartition(".")
    return domain, op


def join_op(domain: str, op: str) -> str:
    return f"{domain}.{op}" if domain else op


def _schema_domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


@lru_cache(maxsize=None)
def schema(op_type: str, version: Optional[int] = None):
    """The ``OpSchema`` in force for ``op_type`` at op set ``version`` (the newest without one); None when
    ONNX has no schema for it (a custom op or a local function)."""
    import onnx.defs

    domain, op = split_op(op_type)
    domain = _schema_domain(domain)
    try:
        if version is None:
            return onnx.defs.get_schema(op, domain)
        return onnx.defs.get_schema(op, int(version), domain)
    except onnx.defs.SchemaError:
        return None


def node_version(node: Node) -> Optional[int]:
    """The op set version a node's op is looked up at: its ONNX domain's entry in the graph's imports."""
    g = node.graph
    if g is None:
        return None
    return g.opset_imports.get(_import_key(node.op_type))


@lru_cache(maxsize=None)
def _import_key(op_type: str) -> str:
    """The ``opset_imports`` key of ``op_type``'s ONNX domain."""
    domain = _schema_domain(split_op(op_type)[0])
    return DOMAIN if domain == "" else domain


def node_schema(node: Node):
    return schema(node.op_type, node_version(node))


# ------------------------------------------------------------------------------------------ dtypes
@lru_cache(maxsize=None)
def _dtype_tables() -> tuple[dict, dict]:
    """ONNX ``TensorProto.DataType`` codes <-> graphir dtypes, through onnx's own numpy mapping."""
    from onnx import TensorProto, helper

    to_ir, from_ir = {}, {}
    for name, code in TensorProto.DataType.items():
        if code == TensorProto.UNDEFINED:
            continue
        try:
            dt = DType.from_numpy(helper.tensor_dtype_to_np_dtype(code))
        except (KeyError, ValueError, TypeError):
            continue
        to_ir[code] = dt
        from_ir.setdefault(dt, code)
    return to_ir, from_ir


def dtype_from_onnx(code: int) -> DType:
    try:
        return _dtype_tables()[0][int(code)]
    except KeyError:
        raise ValueError(f"ONNX element type {code} has no graphir dtype") from None


def dtype_to_onnx(dt: DType) -> int:
    try:
        return _dtype_tables()[1][dt.base]
    except KeyError:
        raise ValueError(f"dtype {dt.name} has no ONNX element type") from None


VARIANT = DType.get("variant")  # sequences, optionals, maps: values graphir only passes through


@lru_cache(maxsize=None)
def dtype_from_type_str(type_str: str) -> Optional[DType]:
    """``tensor(float)`` -> f32; a non-tensor type -> variant; a type parameter (``T``) -> None."""
    from onnx import TensorProto

    if type_str.startswith("tensor(") and type_str.endswith(")"):
        try:
            return dtype_from_onnx(TensorProto.DataType.Value(type_str[7:-1].upper()))
        except ValueError:
            return None
    if "(" in type_str:
        return VARIANT
    return None


# ------------------------------------------------------------------------------------------ op data
def _provider(op_type: str, version: Optional[int]) -> Optional[OpInfo]:
    s = schema(op_type, version)
    if s is None:
        return None
    import onnx.defs

    graph_attr = (onnx.defs.OpSchema.AttrType.GRAPH, onnx.defs.OpSchema.AttrType.GRAPHS)
    control_flow = any(a.type in graph_attr for a in s.attributes.values())
    stateful = s.node_determinism == onnx.defs.OpSchema.NodeDeterminism.NonDeterministic
    default = split_op(op_type)[0] in ("", "ai.onnx")
    op = split_op(op_type)[1]
    return OpInfo(
        DOMAIN,
        op_type,
        stateful=stateful,
        commutative=default and op in COMMUTATIVE,
        control_flow=control_flow,
        constant_attr="value" if default and op == "Constant" else None,
        identity_like=default and op in IDENTITY_LIKE,
        foldable=not stateful and not control_flow and not (default and op in NOT_FOLDABLE),
        expanding=default and op in EXPANDING,
        shape_query=SHAPE_QUERIES.get(op) if default else None,
    )


def attr_type(node: Node, name: str):
    """The schema's ``AttrType`` of attribute ``name`` of ``node`` (None when the op has no schema)."""
    s = node_schema(node)
    if s is None:
        return None
    a = s.attributes.get(name)
    return None if a is None else a.type


def _formals(s, n: int, outputs: bool = False) -> list:
    """The formal parameter of each of ``n`` actual inputs (or outputs): a variadic last formal repeats."""
    formals = list(s.outputs if outputs else s.inputs)
    out = []
    for i in range(n):
        if i < len(formals):
            out.append(formals[i])
        elif formals and formals[-1].option == formals[-1].option.Variadic:
            out.append(formals[-1])
        else:
            out.append(None)
    return out


def expected_input_dtypes(node: Node) -> Optional[list[DType]]:
    """Input dtypes the schema requires given the node's other types: a fixed type where the schema names
    one, else the dtype the type parameter is bound to by the first input (or output) that uses it."""
    op_type = node.op_type
    g = node.graph
    exp = _expected(op_type, None if g is None else g.opset_imports.get(_import_key(op_type)),  # node_version
                    tuple([None if v is None else v.type.dtype for v in node._inputs]),
                    tuple([v.type.dtype for v in node.outputs]))
    return None if exp is None else list(exp)


@lru_cache(maxsize=4096)
def _expected(op_type: str, version: Optional[int], ins: tuple, outs: tuple) -> Optional[tuple]:
    """:func:`expected_input_dtypes` by (op, op set, operand dtypes): the verifier asks for every node after
    every pass, and a graph has few distinct combinations."""
    s = schema(op_type, version)
    if s is None:
        return None
    if len(ins) > len(s.inputs) and not (s.inputs and s.inputs[-1].option == s.inputs[-1].option.Variadic):
        return (None,) * len(s.inputs)  # too many inputs: the verifier reports the count
    f_in, f_out = _formals(s, len(ins)), _formals(s, len(outs), outputs=True)
    bound: dict[str, DType] = {}
    for formals, dtypes in ((f_in, ins), (f_out, outs)):
        for f, dt in zip(formals, dtypes):
            if f is None or dt is None or dt is VARIANT or not f.is_homogeneous \
                    or dtype_from_type_str(f.type_str) is not None:
                continue
            bound.setdefault(f.type_str, dt)
    exp: list[DType] = []
    for f, actual in zip(f_in, ins):
        # variant: a non-tensor value, or one shape inference could not type; nothing to check against.
        if f is None or actual is VARIANT:
            exp.append(actual)
            continue
        fixed = dtype_from_type_str(f.type_str)
        want = fixed if fixed is not None else bound.get(f.type_str, actual) if f.is_homogeneous else actual
        exp.append(actual if want is VARIANT else want)
    return tuple(exp)


# Own value names per graph, built on first use and extended by every name handed out here. Passes give
# values names only through this dialect (the generic IR derives names from node names), so the set stays a
# superset of the names in use; a removed value only keeps its name reserved.
_taken: "weakref.WeakKeyDictionary[Graph, set]" = weakref.WeakKeyDictionary()


def unique_value_name(graph: Graph, base: str) -> str:
    """``base``, or ``base_N``, not taken by an argument, capture, initializer or named node output."""
    taken = _taken.get(graph)
    if taken is None:
        taken = set(graph.initializers)
        taken.update(v.name for v in graph.arguments)
        taken.update(v.name for v in graph.captures)
        for n in graph.nodes():
            for v in n.outputs:
                if v._name is not None:
                    taken.add(v._name)
        _taken[graph] = taken
    name, i = base, 0
    while name in taken or name in graph.initializers:
        name = f"{base}_{i}"
        i += 1
    taken.add(name)
    return name


def add_node(graph: Graph, op_type: str, inputs, attrs: dict, types, name: str) -> Node:
    """An onnx node named ``name`` whose outputs get names of their own, unique in the graph (``name``,
    ``name_1``, ... as :func:`unique_value_name` hands them out): how passes add ONNX nodes."""
    return graph.add_node(op_type, list(inputs), dict(attrs), list(types), domain=DOMAIN, name=name,
                          output_names=[unique_value_name(graph, f"{name}_{i}" if i else name)
                                        for i in range(len(types))])


def is_onnx_graph(graph: Graph) -> bool:
    """True for a graph the ONNX frontend made (or one like it): ONNX op set imports, only onnx nodes."""
    return bool(graph.opset_imports) and all(n.domain == DOMAIN for n in graph.nodes()) \
        and (DOMAIN in graph.opset_imports or len(graph) > 0)


class ONNXDialect(Dialect):
    """ONNX ops (``onnx.*``), versioned by the graph's op set imports."""

    domain = DOMAIN

    def op_info(self, op_type: str, version: Optional[int] = None) -> Optional[OpInfo]:
        return _provider(op_type, version)

    # The module function itself (no wrapper call): the verifier asks it of every node after every pass.
    expected_input_dtypes = staticmethod(expected_input_dtypes)

    def is_op(self, op_type: str) -> bool:
        return schema(op_type) is not None

    def cast_target(self, node: Node) -> Optional[DType]:
        if node.op_type != "Cast" or node.domain != DOMAIN or "to" not in node.attrs:
            return None
        return dtype_from_onnx(node.attrs["to"])

    def make_constant(self, graph: Graph, array, name: str, *, dtype: Optional[DType] = None,
                      like: Optional[Node] = None) -> Value:
        t = array if isinstance(array, Tensor) else Tensor.from_array(array, dtype)
        return graph.add_initializer(unique_value_name(graph, name), t)

    def make_cast(self, graph: Graph, value: Value, dtype: DType, name: str, *,
                  like: Optional[Node] = None) -> Value:
        n = graph.add_node("Cast", [value], {"to": dtype_to_onnx(dtype)}, [value.type.with_dtype(dtype)],
                           domain=DOMAIN, name=name)
        return n.outputs[0]

    def make_placeholder(self, graph: Graph, name: str, type: TensorType) -> Value:
        return graph.add_argument(unique_value_name(graph, name), type)

    def set_cast_dtype(self, graph: Graph, node: Node, src: DType, dst: DType) -> None:
        if node.op_type != "Cast":
            raise DialectError(f"{node.name!r} is not a Cast")
        graph.set_attr(node, "to", dtype_to_onnx(dst))
        graph.set_output_types(node, [node.outputs[0].type.with_dtype(dst)])

    def set_constant(self, graph: Graph, node: Node, tensor: Tensor) -> None:
        if node.op_type != "Constant":
            raise DialectError(f"{node.name!r} is not a Constant")
        for k in list(node.attrs):
            if k != "value":
                graph.del_attr(node, k)
        graph.set_attr(node, "value", tensor)
        graph.set_output_types(node, [TensorType(tensor.dtype, tensor.shape)])


ONNX = ONNXDialect()


def register_onnx_dialect() -> None:
    """Register the onnx dialect (idempotent); its runtime is attached by ``register_runtimes``."""
    from ..ir.registry import has_dialect, register_dialect

    if not has_dialect(DOMAIN):
        register_dialect(ONNX)
