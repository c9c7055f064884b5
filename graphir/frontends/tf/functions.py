"""Library functions of a TF graph as IR graphs (the frontend's GraphDef import applied to a function body)."""
from __future__ import annotations

from typing import Sequence

from ...dialects.tf_functions import _functions, _library_proto
from ...ir.core import Graph
from ...ir.types import TensorType


def function_body(graph: Graph, name: str, input_types: Sequence[TensorType]) -> Graph:
    """The body of library function ``name`` as an IR graph: one input port per argument (a Placeholder
    of the given type), one output port per result. Raises KeyError for an unknown function and
    ValueError when the arguments do not match its signature."""
    import tensorflow as tf
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    from . import from_graph_def

    fdef = _functions(graph)[name]
    args = list(fdef.signature.input_arg)
    if len(args) != len(input_types):
        raise ValueError(f"function {name!r} takes {len(args)} arguments, the call passes {len(input_types)}")
    shapes = [tf.TensorShape(None if t.shape.rank is None else list(t.shape.dims)).as_proto()
              for t in input_types]
    gd, flat = function_def_to_graph_def(fdef, input_shapes=shapes)
    # The body may call other library functions: TF's importer needs them to type the call nodes.
    gd.library.CopyFrom(_library_proto(graph))
    outputs = [flat[fdef.ret[o.name]] for o in fdef.signature.output_arg]
    return from_graph_def(gd, inputs=[a.name for a in args], outputs=outputs, name=name,
                          label=f"function {name!r}")
