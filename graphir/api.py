"""``graphir.compile``, the public entry point: one conversion, or the accuracy-driven flow.

It sits above :mod:`graphir.tuning` and :mod:`graphir.lpot` so that :mod:`graphir.compiler` never imports
the layers built on top of it.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from . import compiler, lpot


def compile(
    model,
    precisions: Union[str, Sequence[str], None] = "fp32",
    inputs=None,
    outputs=None,
    passes: Optional[str] = None,
    target: str = "native",
    config=None,
    fp32_ops=None,
    bf16_ops=None,
    **options,
) -> compiler.OptimizedModel:
    """Optimize ``model`` and return an :class:`~graphir.compiler.OptimizedModel`.

    ``config`` (a YAML path or dict, LPOT-style), ``eval_func`` or ``eval_dataloader`` switch to the
    accuracy-driven flow of :mod:`graphir.lpot` (which also takes ``metric``, ``workers``, ``progress``
    and ``log``); everything else is a single conversion by :func:`graphir.compiler.compile`."""
    args = dict(precisions=precisions, inputs=inputs, outputs=outputs, passes=passes, target=target,
                fp32_ops=fp32_ops, bf16_ops=bf16_ops)
    if config is not None or options.get("eval_func") is not None or options.get("eval_dataloader") is not None:
        return lpot.compile_with_config(model, config, **args, **options)
    return compiler.compile(model, **args, **options)
