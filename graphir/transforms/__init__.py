"""Graph transformations: one pass per module, registered by kebab-case name; see :mod:`.pass_manager`."""
from __future__ import annotations

import importlib

from .base import PASSES, Pass, PassResult, register_pass

# Pass modules, imported on first use so that pipeline strings can name any of them.
PASS_MODULES = [
    "strip_unused", "remove_training_nodes", "prune_switch_merge", "fold_constants", "cse",
    "fold_batch_norms", "simplify_arithmetic", "dce", "fuse_bias_activation",
    "auto_mixed_precision", "cast_cleanup", "lower_onednn", "inline_grouped_conv",
    "canonicalize_gelu", "dense_to_matmul", "canonicalize_layer_norm",
    "canonicalize_swish", "einsum_to_matmul", "onnx_rules", "tf_to_onnx",
    "canonicalize_dilated_conv", "onnx_transpose_sink",
]
_loaded: set[str] = set()


def _load_all() -> None:
    for m in PASS_MODULES:
        if m not in _loaded:
            importlib.import_module(f"{__name__}.{m}")
            _loaded.add(m)


__all__ = ["PASSES", "Pass", "PassResult", "register_pass"]
