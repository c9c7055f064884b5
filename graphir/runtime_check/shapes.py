"""Concrete input shapes for running a model: ``--input-shapes`` / ``input_shapes=``, or defaults.

A model with unknown dims cannot run until each gets a size. The batch dim (dim 0) gets the batch size;
the others get ``dim``, unless the user gave the input's shape. A shape may leave dims as None, which
the defaults then fill in (this is how sizes found by probing keep the batch dim free).
Parsing needs no TensorFlow, so the CLI checks the option before importing it.
"""
from __future__ import annotations

import re
from typing import Optional, Union

from ..errors import ConfigError

Shape = tuple  # of int, or None for "fill in the default"
ShapeSpec = Union[None, str, dict]

_DIMS = re.compile(r"^\d+(x\d+)*$")


def format_shape(shape) -> str:
    """(1, 240, 240, 3) -> ``1x240x240x3``; unknown dims are ``?``; a scalar is ``scalar``."""
    if not shape:
        return "scalar"
    return "x".join("?" if d is None else str(d) for d in shape)


def _dims(text: str, where: str, entry: str) -> Shape:
    text = text.strip().lower()
    if text in ("", "scalar"):
        return ()
    if not _DIMS.match(text):
        raise ConfigError(f"{where}: {entry!r}: expected NAME:DxDx... with integer sizes, e.g. input:1x224x224x3")
    dims = tuple(int(d) for d in text.split("x"))
    if any(d < 1 for d in dims):
        raise ConfigError(f"{where}: {entry!r}: sizes must be >= 1")
    return dims


def parse_input_shapes(spec: ShapeSpec, where: str = "--input-shapes") -> dict[str, Shape]:
    """``"a:1x224x224x3,b:1x10"`` or ``{"a": [1, 224, 224, 3]}`` -> ``{"a": (1, 224, 224, 3), ...}``.

    A bare ``1x224x224x3`` (no name) is keyed ``""``: the model's only input."""
    if spec is None:
        return {}
    out: dict[str, Shape] = {}
    if isinstance(spec, dict):
        items = []
        for name, dims in spec.items():
            if isinstance(dims, str):
                items.append((str(name), _dims(dims, where, f"{name}:{dims}")))
            else:
                try:
                    shape = tuple(None if d is None else int(d) for d in dims)
                except (TypeError, ValueError):
                    raise ConfigError(f"{where}: {name!r}: expected a list of sizes, got {dims!r}") from None
                if any(d is not None and d < 1 for d in shape):
                    raise ConfigError(f"{where}: {name!r}: sizes must be >= 1")
                items.append((str(name), shape))
    elif isinstance(spec, str):
        items = []
        for entry in (e.strip() for e in spec.split(",")):
            if not entry:
                continue
            name, sep, dims = entry.rpartition(":")
            if not sep:  # no name: the shape of the only input
                name, dims = "", entry
            elif not name.strip():
                raise ConfigError(f"{where}: {entry!r}: empty input name")
            items.append((name.strip(), _dims(dims, where, entry)))
        if not items:
            raise ConfigError(f"{where}: empty; expected NAME:DxDx..., e.g. input:1x224x224x3")
    else:
        raise ConfigError(f"{where}: expected a string or a mapping, got {type(spec).__name__}")
    for name, shape in items:
        if name in out:
            raise ConfigError(f"{where}: input {name or '(unnamed)'!r} given twice")
        out[name] = shape
    return out


def _fits(shape: Shape, dims) -> bool:
    if dims is None:  # unknown rank: anything
        return True
    return len(shape) == len(dims) and all(d is None or s is None or d == s for s, d in zip(shape, dims))


def resolve_input_shapes(graph, spec: ShapeSpec, where: str = "--input-shapes") -> dict[str, Shape]:
    """Parse ``spec`` and check it against ``graph``'s inputs: the names exist, rank and known sizes agree.

    Names are port names, or the tensor names of the inputs (``x:0``); the result is keyed by port name."""
    given = parse_input_shapes(spec, where)
    if not given:
        return {}
    ports = list(graph.inputs)
    by_name = {p.name: p for p in ports}
    for p in ports:
        by_name.setdefault(p.value.name, p)
        by_name.setdefault(p.value.name + ":0" if ":" not in p.value.name else p.value.name, p)
    out: dict[str, Shape] = {}
    for name, shape in given.items():
        if name == "":
            if len(ports) != 1:
                raise ConfigError(f"{where}: the model has {len(ports)} inputs; name each one "
                                  f"(NAME:DxDx..., inputs: {', '.join(p.name for p in ports) or 'none'})")
            port = ports[0]
        else:
            port = by_name.get(name)
            if port is None:
                raise ConfigError(f"{where}: {name!r} is not an input of the model (inputs: "
                                  f"{', '.join(p.name for p in ports) or 'none'})")
        dims = port.value.shape.dims
        if not _fits(shape, dims):
            raise ConfigError(f"{where}: input {port.name!r} has shape {format_shape(dims)}; "
                              f"{format_shape(shape)} does not fit it")
        out[port.name] = shape
    return out


def default_shape(dims, *, dim: int, batch_size: Optional[int] = None, given: Optional[Shape] = None) -> Shape:
    """The concrete shape to run an input of static ``dims`` at: ``given`` sizes first, then the batch
    size for dim 0 and ``dim`` for the other unknown dims (``batch_size`` None: ``dim`` too). An input of
    unknown rank runs as a scalar, which broadcasts and also serves as a loop bound or index."""
    if given is not None:
        dims = list(given) if dims is None else [g if g is not None else d for g, d in zip(given, dims)]
    if dims is None:
        return ()
    batch = dim if batch_size is None else batch_size
    return tuple((batch if i == 0 else dim) if d is None else d for i, d in enumerate(dims))


def free_dims(dims, given: Optional[Shape] = None) -> bool:
    """Does an input of static ``dims`` have unknown sizes besides the batch dim (after ``given``)?"""
    if dims is None:
        return False
    if given is not None and len(given) == len(dims):
        dims = [g if g is not None else d for g, d in zip(given, dims)]
    return any(d is None for d in list(dims)[1:])
