"""Framework-neutral value types: dtypes, shapes, tensor types, constants and function references.

Nothing here knows about TensorFlow. Frontends map their own dtype enums onto :class:`DType`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Optional

import ml_dtypes
import numpy as np


class DType:
    """An element type. Instances are interned: compare with ``is`` or ``==``."""

    __slots__ = ("name", "np", "itemsize", "is_float", "is_ref", "base")
    _by_name: dict[str, "DType"] = {}

    def __init__(self, name, np_dtype, itemsize, is_float=False, is_ref=False, base=None):
        self.name = name
        self.np = None if np_dtype is None else np.dtype(np_dtype)
        self.itemsize = itemsize
        self.is_float = is_float
        self.is_ref = is_ref
        self.base = base or self
        DType._by_name[name] = self

    def __repr__(self):
        return self.name

    def __reduce__(self):
        return (DType.get, (self.name,))

    @staticmethod
    def get(name: str) -> "DType":
        try:
            return DType._by_name[name]
        except KeyError:
            raise ValueError(f"unknown dtype {name!r}") from None

    @staticmethod
    def all() -> list["DType"]:
        return list(DType._by_name.values())

    def as_ref(self) -> "DType":
        return DType._by_name[self.name + "_ref"]

    @staticmethod
    def from_numpy(dt) -> "DType":
        dt = np.dtype(dt)
        for d in DType._by_name.values():
            if d.np is not None and not d.is_ref and d.np == dt and d.name not in _NP_AMBIGUOUS:
                return d
        if dt.kind in "OSU":
            return DType.get("string")
        raise ValueError(f"no graphir dtype for numpy dtype {dt}")


# qint types share numpy storage with plain ints; they never win a numpy lookup.
_NP_AMBIGUOUS = {"qi8", "qu8", "qi16", "qu16", "qi32"}

_BASE = [
    # name, numpy dtype, itemsize, is_float
    ("f32", np.float32, 4, True),
    ("f64", np.float64, 8, True),
    ("f16", np.float16, 2, True),
    ("bf16", ml_dtypes.bfloat16, 2, True),
    ("i8", np.int8, 1, False),
    ("i16", np.int16, 2, False),
    ("i32", np.int32, 4, False),
    ("i64", np.int64, 8, False),
    ("u8", np.uint8, 1, False),
    ("u16", np.uint16, 2, False),
    ("u32", np.uint32, 4, False),
    ("u64", np.uint64, 8, False),
    ("bool", np.bool_, 1, False),
    ("c64", np.complex64, 8, False),
    ("c128", np.complex128, 16, False),
    ("string", object, 0, False),
    ("resource", None, 0, False),
    ("variant", None, 0, False),
    ("qi8", np.int8, 1, False),
    ("qu8", np.uint8, 1, False),
    ("qi16", np.int16, 2, False),
    ("qu16", np.uint16, 2, False),
    ("qi32", np.int32, 4, False),
    ("f8e5m2", ml_dtypes.float8_e5m2, 1, True),
    ("f8e4m3fn", ml_dtypes.float8_e4m3fn, 1, True),
    ("f8e4m3fnuz", ml_dtypes.float8_e4m3fnuz, 1, True),
    ("f8e4m3b11fnuz", ml_dtypes.float8_e4m3b11fnuz, 1, True),
    ("f8e5m2fnuz", ml_dtypes.float8_e5m2fnuz, 1, True),
    ("i4", ml_dtypes.int4, 1, False),
    ("u4", ml_dtypes.uint4, 1, False),
    ("i2", getattr(ml_dtypes, "int2", None), 1, False),
    ("u2", getattr(ml_dtypes, "uint2", None), 1, False),
    ("f4e2m1fn", getattr(ml_dtypes, "float4_e2m1fn", None), 1, True),
    ("f8e8m0fnu", getattr(ml_dtypes, "float8_e8m0fnu", None), 1, True),
    ("f6e2m3fn", getattr(ml_dtypes, "float6_e2m3fn", None), 1, True),
    ("f6e3m2fn", getattr(ml_dtypes, "float6_e3m2fn", None), 1, True),
]
for _name, _np, _size, _isf in _BASE:
    _b = DType(_name, _np, _size, _isf)
    DType(_name + "_ref", _np, _size, _isf, is_ref=True, base=_b)

f32 = DType.get("f32")
f64 = DType.get("f64")
f16 = DType.get("f16")
bf16 = DType.get("bf16")
i32 = DType.get("i32")
i64 = DType.get("i64")
boolean = DType.get("bool")
string = DType.get("string")


class Shape:
    """A static shape. ``dims is None`` means unknown rank; a ``None`` dim is unknown."""

    __slots__ = ("dims",)

    def __init__(self, dims: Optional[Iterable[Optional[int]]]):
        if dims is None:
            self.dims = None
            return
        dims = tuple(dims)
        # Shapes are made by the thousand on load; most dims are already known plain ints.
        for d in dims:
            if type(d) is not int or d < 0:
                dims = tuple([None if d is None or d < 0 else int(d) for d in dims])
                break
        self.dims = dims

    @property
    def rank(self) -> Optional[int]:
        return None if self.dims is None else len(self.dims)

    @property
    def is_static(self) -> bool:
        return self.dims is not None and all(d is not None for d in self.dims)

    def num_elements(self) -> Optional[int]:
        if not self.is_static:
            return None
        n = 1
        for d in self.dims:
            n *= d
        return n

    def __eq__(self, other):
        return isinstance(other, Shape) and self.dims == other.dims

    def __hash__(self):
        return hash(self.dims)

    def text(self) -> str:
        """``?x224x3``; ``*`` for unknown rank; empty string for a scalar."""
        if self.dims is None:
            return "*"
        return "x".join("?" if d is None else str(d) for d in self.dims)

    @staticmethod
    def parse(text: str) -> "Shape":
        if text == "*":
            return Shape(None)
        if text == "":
            return Shape(())
        return Shape(None if p == "?" else int(p) for p in text.split("x"))

    def __repr__(self):
        return f"Shape<{self.text()}>"


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: DType
    shape: Shape

    def text(self) -> str:
        s = self.shape.text()
        return f"tensor<{self.dtype.name}>" if s == "" else f"tensor<{s}x{self.dtype.name}>"

    def nbytes(self) -> Optional[int]:
        n = self.shape.num_elements()
        return None if n is None else n * self.dtype.itemsize

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __repr__(self):
        return self.text()


class Tensor:
    """A constant tensor value.

    ``array`` is a numpy array (bf16 uses ml_dtypes). ``encoded`` optionally keeps the frontend's own
    serialised form, tagged by framework (e.g. ``("tf", TensorProto bytes)``), so that a backend of the same
    framework can re-emit an untouched constant byte for byte. ``digest_only`` marks a constant parsed
    from an abbreviated text dump: its data is unknown, only its digest.
    """

    __slots__ = ("dtype", "shape", "_array", "_decode", "encoded", "_digest")

    def __init__(self, dtype: DType, shape: Shape, array=None, *, decode=None, encoded=None, digest=None):
        self.dtype = dtype
        self.shape = shape
        self._array = array
        self._decode = decode
        self.encoded = encoded
        self._digest = digest

    @staticmethod
    def from_array(array, dtype: Optional[DType] = None) -> "Tensor":
        array = np.asarray(array)
        if dtype is None:
            dtype = DType.from_numpy(array.dtype)
        if dtype.np is not None and array.dtype != dtype.np:
            array = array.astype(dtype.np)
        return Tensor(dtype, Shape(array.shape), array)

    @property
    def digest_only(self) -> bool:
        return self._array is None and self._decode is None

    def numpy(self) -> np.ndarray:
        if self._array is None:
            if self._decode is None:
                raise ValueError("constant data was elided from the text dump (use --full-constants)")
            self._array = self._decode()
            self._decode = None
        return self._array

    @property
    def size(self) -> int:
        n = self.shape.num_elements()
        return 0 if n is None else n

    @property
    def nbytes(self) -> int:
        if self.dtype.itemsize:
            return self.size * self.dtype.itemsize
        return sum(len(x) for x in self.numpy().reshape(-1)) if self.size else 0

    def digest(self) -> str:
        """A short content digest, stable across runs and platforms."""
        if self._digest is None:
            h = hashlib.sha256()
            h.update(f"{self.dtype.name}:{self.shape.text()}:".encode())
            a = self.numpy()
            if a.dtype == object:
                for x in a.reshape(-1):
                    b = x if isinstance(x, bytes) else str(x).encode()
                    h.update(len(b).to_bytes(8, "little"))
                    h.update(b)
            else:
                h.update(np.ascontiguousarray(a).tobytes())
            self._digest = h.hexdigest()[:16]
        return self._digest

    def same_value(self, other: "Tensor") -> bool:
        if self.dtype is not other.dtype or self.shape != other.shape:
            return False
        a, b = self.numpy(), other.numpy()
        if a.dtype == object:
            return a.shape == b.shape and all(x == y for x, y in zip(a.reshape(-1), b.reshape(-1)))
        return a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()

    def __repr__(self):
        return f"Tensor<{self.dtype.name}, {self.shape.text() or 'scalar'}>"


@dataclass(frozen=True)
class FuncRef:
    """A reference to a function in the graph's function library, with optional attributes."""

    name: str
    attrs: tuple = ()  # sorted tuple of (key, value)


@dataclass(frozen=True)
class Placeholder:
    """An attribute placeholder (only legal inside function bodies); kept for losslessness."""

    name: str


@dataclass
class Subgraph:
    """An attribute value holding a nested graph (an ``If`` branch, a ``Loop`` body, a function body).

    ``captures`` are the outer values the body reads; inside the body, ``graph.captures[i]`` is the
    argument standing for ``captures[i]``. The node holding the attribute counts as a user of every
    captured value, so dead-code elimination and reachability respect them."""

    graph: Any  # a graphir.ir.Graph
    captures: list = None  # outer Values

    # False until the process makes its first Subgraph (by any route: constructor, copy, pickle all go
    # through __new__). Until then no node can hold one, so hot loops skip scanning attributes for them.
    made: ClassVar[bool] = False

    def __new__(cls, *args, **kwargs):
        Subgraph.made = True
        return super().__new__(cls)

    def __post_init__(self):
        self.captures = list(self.captures or [])
