"""graphir's framework-neutral IR."""
from .core import CTRL, Graph, Node, Port, Value
from .errors import IRError
from .registry import OpInfo, op_info
from .types import DType, FuncRef, Placeholder, Shape, Subgraph, Tensor, TensorType
from .verifier import VerificationError, verify

__all__ = [
    "CTRL", "DType", "FuncRef", "Graph", "IRError", "Node", "OpInfo", "Placeholder", "Port", "Shape",
    "Subgraph", "Tensor", "TensorType", "Value", "VerificationError", "op_info", "verify",
]
