"""What this machine and the installed TF can run: bf16 CPU flags, oneDNN, TF version; target resolution.

``GRAPHIR_CPU_FLAGS`` (space/comma separated, may be empty) replaces the detected CPU flags, so the
no-bf16 path can be exercised on any machine.
"""
from __future__ import annotations

import os
from functools import lru_cache

from ..dialects.tf_opdefs import onednn_enabled  # noqa: F401  (re-exported for graphir env)
from ..errors import ConfigError

TARGETS = ("native", "avx512_bf16", "amx_bf16", "generic")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
NO_BF16_WARNING = ("this CPU has no AVX512_BF16/AMX_BF16; emitting fp32 "
                   "(use --target avx512_bf16 to force bf16)")


@lru_cache(maxsize=1)
def _detected_flags() -> frozenset:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import cpuinfo

        return frozenset(f.lower() for f in cpuinfo.get_cpu_info().get("flags", ()))
    except Exception:  # py-cpuinfo is best effort on exotic platforms
        return frozenset()


def cpu_flags() -> frozenset:
    env = os.environ.get("GRAPHIR_CPU_FLAGS")
    if env is not None:
        return frozenset(env.replace(",", " ").lower().split())
    return _detected_flags()


def cpu_bf16_features() -> list[str]:
    """The bf16 features of this CPU, e.g. ``["avx512_bf16", "amx_bf16"]``."""
    flags = cpu_flags()
    return [f for f in BF16_FLAGS if f in flags]


def tf_version() -> str:
    try:
        import tensorflow as tf

        return tf.__version__
    except ImportError:
        return "not installed"


def describe() -> str:
    """A few lines for ``graphir env``."""
    feats = cpu_bf16_features()
    src = " (GRAPHIR_CPU_FLAGS override)" if "GRAPHIR_CPU_FLAGS" in os.environ else ""
    return "\n".join([
        f"tensorflow: {tf_version()}",
        f"oneDNN: {'on' if onednn_enabled() else 'off'}",
        f"cpu bf16: {', '.join(feats) if feats else 'none'}{src}",
        f"native target: {native_target()}",
    ])


def native_target() -> str:
    feats = cpu_bf16_features()
    return "amx_bf16" if "amx_bf16" in feats else "avx512_bf16" if feats else "generic"


def resolve(target: str, precisions: list[str]) -> tuple[list[str], list[str]]:
    """Effective precisions for ``target`` and the warnings to print."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if "bf16" not in precisions:
        return list(precisions), []
    explicit = target != "native"
    eff = native_target() if target == "native" else target
    if eff != "generic":
        return list(precisions), []
    if precisions == ["bf16"]:
        why = "target generic has" if explicit else "this CPU has"
        raise ConfigError(f"--precisions bf16: {why} no AVX512_BF16/AMX_BF16, bf16 would only be "
                          "emulated; add fp32 or pass --target avx512_bf16")
    if target == "generic":
        return ["fp32"], ["target generic has no bf16 support; emitting fp32"]
    return ["fp32"], [NO_BF16_WARNING]
