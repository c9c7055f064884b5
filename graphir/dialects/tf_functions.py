"""The TF function library a graph carries: which nodes call a library function, which functions XLA must
compile, a function's body as IR, and dropping functions nobody calls any more.

The library is ``graph.attrs["tf.library"]``, a serialized ``FunctionDefLibrary`` kept verbatim by the
frontend. TF's own protobufs parse it and TF's FunctionDef -> GraphDef converter turns a body into a
GraphDef, which the frontend types with TF's shape inference given the call's input shapes; passes see
only IR.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Optional

from ..ir.core import Graph, Node
from ..ir.types import FuncRef

LIBRARY = "tf.library"
# Ops that call a library function named by their ``f`` attr, with the function's arguments as inputs.
CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
XLA_MUST_COMPILE = "_XlaMustCompile"


@lru_cache(maxsize=8)
def _parse(data: bytes) -> dict:
    from tensorflow.core.framework import function_pb2

    lib = function_pb2.FunctionDefLibrary.FromString(data)
    return {f.signature.name: f for f in lib.function}


def _functions(graph: Graph) -> dict:
    data = graph.attrs.get(LIBRARY)
    # An elided library (a text dump without constants) holds no functions we can read.
    return _parse(data) if isinstance(data, bytes) else {}


def has_library(graph: Graph) -> bool:
    return isinstance(graph.attrs.get(LIBRARY), bytes)


def callee(node: Node) -> Optional[str]:
    """The library function ``node`` calls, if it is a function-call op."""
    if node.domain != "tf" or node.op_type not in CALL_OPS:
        return None
    f = node.attrs.get("f")
    return f.name if isinstance(f, FuncRef) else None


def must_compile(graph: Graph, node: Node) -> bool:
    """True if the call ``node`` (or the function it calls) is marked ``_XlaMustCompile``: TF compiles the
    body with XLA at every call instead of running its ops with their own kernels."""
    if node.attrs.get(XLA_MUST_COMPILE) is True:
        return True
    fdef = _functions(graph).get(callee(node) or "")
    if fdef is None or XLA_MUST_COMPILE not in fdef.attr:
        return False
    return bool(fdef.attr[XLA_MUST_COMPILE].b)


def _library_proto(graph: Graph):
    from tensorflow.core.framework import function_pb2

    lib = function_pb2.FunctionDefLibrary()
    data = graph.attrs.get(LIBRARY)
    if isinstance(data, bytes):
        lib.ParseFromString(data)
    return lib


def _refs_in_attr(av) -> Iterable[str]:
    kind = av.WhichOneof("value")
    if kind == "func":
        yield av.func.name
    elif kind == "list":
        for f in av.list.func:
            yield f.name


def _refs_in_ir(v) -> Iterable[str]:
    if isinstance(v, FuncRef):
        yield v.name
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _refs_in_ir(x)


def drop_functions(graph: Graph, names: Iterable[str]) -> list[str]:
    """Remove the functions ``names`` from the library when no node of ``graph`` and no other kept
    function refers to them any more. Returns the names removed."""
    funcs = _functions(graph)
    doomed = {n for n in names if n in funcs}
    if not doomed:
        return []
    # Functions reachable from the graph's nodes, through function attrs and ops named after functions.
    live: set[str] = set()
    stack = [r for n in graph.nodes() for v in n.attrs.values() for r in _refs_in_ir(v)]
    stack += [n.op_type for n in graph.nodes() if n.op_type in funcs]
    while stack:
        f = stack.pop()
        if f in live or f not in funcs:
            continue
        live.add(f)
        for nd in funcs[f].node_def:
            if nd.op in funcs:
                stack.append(nd.op)
            for av in nd.attr.values():
                stack.extend(_refs_in_attr(av))
    doomed -= live
    if not doomed:
        return []
    lib = _library_proto(graph)
    keep = [f for f in lib.function if f.signature.name not in doomed]
    del lib.function[:]
    lib.function.extend(keep)
    # Gradients registered for a removed function go with it.
    grads = [g for g in lib.gradient if g.function_name not in doomed]
    del lib.gradient[:]
    lib.gradient.extend(grads)
    if lib.ByteSize():
        graph.attrs[LIBRARY] = lib.SerializeToString(deterministic=True)
    else:
        del graph.attrs[LIBRARY]
    return sorted(doomed)
