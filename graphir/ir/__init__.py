"""graphir's framework-neutral IR."""
from .core import CTRL, Graph, IRError, Node, Port, Value
from .registry import OpInfo, op_info
from .types import DType, FuncRef, Placeholder, Shape, Tensor, TensorType
from .verifier import VerificationError, verify

__all__ = [
    "CTRL", "DType", "FuncRef", "Graph", "IRError", "Node", "OpInfo", "Placeholder", "Port", "Shape",
    "Tensor", "TensorType", "Value", "VerificationError", "op_info", "verify",
]
