"""Helpers for the Keras 3 canonicalization tests: trained-like models, bf16 checks, FileCheck-style text
expectations."""
import re

import numpy as np

import graphir
from graphir.runtime_check.runner import Runner, random_inputs


def randomize(model, seed=0, scale=0.5):
    """Give every weight of ``model`` random non-zero values (biases, LayerNorm gamma/beta included), so
    that a rewrite that drops or misplaces one shows in the outputs. Variances stay positive."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w, var in zip(ws, layer.weights):
            r = rng.standard_normal(w.shape).astype(w.dtype) * scale
            if "variance" in var.path:
                r = np.abs(r) + 0.5
            elif "gamma" in var.path:
                r = r + 1.0
            new.append(r)
        layer.set_weights(new)
    return model


def load(model, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return graphir.load(randomize(model, seed))


def feeds_for(graph, seed=0, dim=3):
    return random_inputs(graph, dim=dim, seed=seed)


def assert_bf16_close(original, rewritten, *, feeds=None, tol=5e-2):
    """Compile ``rewritten`` for bf16 everywhere (AMX target) and compare with ``original`` run in fp32:
    relative to the output's scale, so that small outputs do not dominate."""
    om = graphir.compile(rewritten, precisions="bf16", target="amx_bf16", measure_profitability=False)
    feeds = feeds if feeds is not None else feeds_for(original)
    a, b = Runner(original)(feeds), Runner(om.ir)(feeds)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        err = np.abs(y.astype(np.float64) - x) / (np.abs(x).max() + 1e-6)
        assert err.max() <= tol, err.max()
    return om


def rel_err(a, b):
    return float(np.abs(np.asarray(b, np.float64) - a).max() / (np.abs(a).max() + 1e-12))


def filecheck(text: str, checks: str) -> None:
    """A FileCheck subset over ``text``: each ``CHECK: pat`` must match a later line than the previous
    match (``pat`` is a substring, ``{{re}}`` embeds a regex), ``CHECK-NOT: pat`` must match no line
    between the surrounding CHECKs (or, with no CHECK before/after, anywhere before/after)."""
    lines = text.splitlines()

    def rx(pat):
        parts = re.split(r"\{\{(.*?)\}\}", pat.strip())
        return re.compile("".join(p if i % 2 else re.escape(p) for i, p in enumerate(parts)))

    pos, nots = 0, []
    for raw in checks.strip().splitlines():
        raw = raw.strip()
        if not raw:
            continue
        kind, _, pat = raw.partition(":")
        if kind == "CHECK-NOT":
            nots.append(rx(pat))
            continue
        assert kind == "CHECK", raw
        r = rx(pat)
        for i in range(pos, len(lines)):
            if r.search(lines[i]):
                for n in nots:
                    bad = [ln for ln in lines[pos:i] if n.search(ln)]
                    assert not bad, f"CHECK-NOT {n.pattern!r} matched {bad[0]!r}"
                nots, pos = [], i + 1
                break
        else:
            raise AssertionError(f"CHECK {pat.strip()!r} not found after line {pos}:\n{text}")
    for n in nots:
        bad = [ln for ln in lines[pos:] if n.search(ln)]
        assert not bad, f"CHECK-NOT {n.pattern!r} matched {bad[0]!r}"
