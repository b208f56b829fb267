#!/usr/bin/env python3
"""Re-check the committed fixtures and bench models.

    python tools/check_fixtures.py

For every directory with a reflex.toml under crates/reflex-graph/tests/fixtures and
examples/bench it checks that
  1. the PyTorch model rebuilt from reflex.toml + weights.safetensors (strict state_dict
     load: no missing or extra tensor) reproduces io.safetensors `output`, and
  2. a second, plain-numpy float64 implementation written from the text of docs/layers.md (explicit
     zero padding, explicit shuffle index formula, BN not folded) agrees too, so the
     reference does not merely agree with itself.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from reflex import torch_ref as rt  # pip install -e ./python

ROOT = Path(__file__).resolve().parent.parent
DIRS = [ROOT / "crates" / "reflex-graph" / "tests" / "fixtures", ROOT / "examples" / "bench"]


def act(x, f, slope):
    if f == "none":
        return x
    if f == "relu":
        return np.maximum(x, 0)
    if f == "relu6":
        return np.minimum(np.maximum(x, 0), 6)
    if f == "leaky_relu":
        return np.where(x >= 0, x, slope * x)
    if f == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    if f == "silu":
        return x / (1 + np.exp(-x))
    if f == "gelu":
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1 + erf(x / math.sqrt(2)))
    if f == "tanh":
        return np.tanh(x)
    if f == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if f == "hardswish":
        return x * np.minimum(np.maximum(x + 3, 0), 6) / 6
    raise ValueError(f)


def pads(padding, k, d):
    total = d * (k - 1)
    if padding == "same":
        return total // 2, total - total // 2
    if padding == "causal":
        return total, 0
    if padding == "valid":
        return 0, 0
    return int(padding), int(padding)


def conv(x, w, b, stride, padding, d, groups):
    """x [C, L], w [out, in/g, k] -> [out, L_out]; direct loops over taps."""
    cin, _ = x.shape
    out, cpg, k = w.shape
    lp, rp = pads(padding, k, d)
    xp = np.concatenate([np.zeros((cin, lp)), x, np.zeros((cin, rp))], axis=1)
    lout = (xp.shape[1] - d * (k - 1) - 1) // stride + 1
    y = np.zeros((out, lout))
    opg = out // groups
    for o in range(out):
        g = o // opg
        for t in range(lout):
            s = 0.0
            for c in range(cpg):
                for j in range(k):
                    s += w[o, c, j] * xp[g * cpg + c, t * stride + j * d]
            y[o, t] = s
    if b is not None:
        y += b[:, None]
    return y


def bn(x, W, p):
    scale = W[p + "weight"] / np.sqrt(W[p + "running_var"] + 1e-5)
    return (x - W[p + "running_mean"][:, None]) * scale[:, None] + W[p + "bias"][:, None]


def run_np(cfg, W, x):
    outs = {"input": x}
    prev = "input"
    for s in cfg["model"]["layers"]:
        n, p = s["name"], s["plugin"]
        h = outs[s.get("input", prev)] if p != "add" else None
        f, sl = s.get("activation", "relu" if p == "residual" else "none"), s.get("negative_slope", 0.01)
        useb = s.get("bias", True)
        B = (lambda key: W[key] if useb else None)
        if p in ("conv_standard", "conv_dilated", "conv_grouped"):
            g = s.get("groups", 1)
            y = conv(h, W[n + ".weight"], B(n + ".bias"), s.get("stride", 1),
                     s.get("padding", "same"), s.get("dilation", 1), g)
            if s.get("batch_norm", False):
                y = bn(y, W, n + ".bn.")
            y = act(y, f, sl)
            if p == "conv_grouped" and s.get("shuffle", True):
                out = y.shape[0]
                z = np.empty_like(y)
                for i in range(out // g):
                    for j in range(g):
                        z[i * g + j] = y[j * (out // g) + i]
                y = z
        elif p == "conv_depthwise":
            y = conv(h, W[n + ".depthwise.weight"], B(n + ".depthwise.bias"), s.get("stride", 1),
                     s.get("padding", "same"), s.get("dilation", 1), h.shape[0])
            y = act(y, s.get("mid_activation", "none"), sl)
            y = conv(y, W[n + ".pointwise.weight"], B(n + ".pointwise.bias"), 1, "valid", 1, 1)
            if s.get("batch_norm", False):
                y = bn(y, W, n + ".bn.")
            y = act(y, f, sl)
        elif p == "residual":
            def c1(z, part, pad="valid", d=1):
                r = conv(z, W[f"{n}.{part}.weight"], B(f"{n}.{part}.bias"), 1, pad, d, 1)
                return bn(r, W, f"{n}.{part}.bn.") if s.get("batch_norm", False) else r
            t = act(c1(h, "reduce"), f, sl)
            t = act(c1(t, "conv", s.get("padding", "same"), s.get("dilation", 1)), f, sl)
            t = c1(t, "expand")
            sc = c1(h, "shortcut") if s.get("out_channels", h.shape[0]) != h.shape[0] else h
            y = act(t + sc, f, sl)
        elif p == "activation":
            y = act(h, s["function"], sl)
        elif p == "batch_norm":
            y = bn(h, W, n + ".")
        elif p in ("max_pool", "avg_pool"):
            k = s["kernel_size"]
            m = h.shape[1] // k
            r = h[:, : m * k].reshape(h.shape[0], m, k)
            y = r.max(axis=2) if p == "max_pool" else r.mean(axis=2)
        elif p == "global_avg_pool":
            y = h.mean(axis=1)
        elif p == "global_max_pool":
            y = h.max(axis=1)
        elif p == "flatten":
            y = h.reshape(-1)
        elif p == "linear":
            y = W[n + ".weight"] @ h + (W[n + ".bias"] if useb else 0)
        elif p == "add":
            y = sum(outs[i] for i in s["inputs"])
            y = act(y, s.get("activation", "none"), sl)
        elif p == "softmax":
            e = np.exp(h - h.max())
            y = e / e.sum()
        else:
            raise ValueError(p)
        outs[n] = y
        prev = n
    return outs[prev]


def main():
    bad = 0
    count = 0
    for base in DIRS:
        for d in sorted(p for p in base.iterdir() if (p / "reflex.toml").exists()):
            count += 1
            cfg = rt.load_config(d / "reflex.toml")
            io = load_file(str(d / "io.safetensors"))
            model = rt.load_model(d / "reflex.toml")
            with torch.no_grad():
                got = model(io["input"])
            W = {}
            if (d / "weights.safetensors").exists():
                W = {k: v.float().numpy().astype(np.float64)
                     for k, v in load_file(str(d / "weights.safetensors")).items()
                     if v.is_floating_point()}
            x = io["input"].numpy().astype(np.float64)
            ref = io["output"].numpy().astype(np.float64)
            npo = np.stack([run_np(cfg, W, x[i]) for i in range(x.shape[0])])
            tol = 1e-5 + 1e-4 * np.abs(ref).max(axis=1, keepdims=True)
            e1 = np.abs(got.numpy() - ref)
            e2 = np.abs(npo - ref)
            ok = bool((e1 <= tol).all() and (e2 <= tol).all())
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {d.relative_to(ROOT)}  torch {e1.max():.1e}  "
                  f"numpy {e2.max():.1e}")
    print(f"{count} checked, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
