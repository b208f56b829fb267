#!/usr/bin/env python3
"""Reflex vs onnxruntime vs eager PyTorch vs the core's FMA limit, in one run.

    cargo build --release --workspace
    python tools/perf_compare.py [--rounds 2] [--iters 3000] [--json] [--only standard ...]
    python tools/perf_compare.py --export-onnx examples/bench/standard/reflex.toml OUT.onnx

Models: the five bench models examples/bench/<variant>/ and the five trained models
examples/models/<variant>/. Each is built from its reflex.toml with reflex.torch_ref, checked
against its io.safetensors (as bench_torch.py does), exported once to ONNX (TorchScript
exporter, opset 17, static input [1, 6, 128], temp dir; "same" padding written as explicit
pads, see explicit_same_pads) and onnxruntime's output is checked
against PyTorch's on every io.safetensors window (max |diff| <= 1e-4 * max |PyTorch|).

Engines, all one thread, batch 1, one window per call, interleaved per model (Reflex, ORT,
PyTorch, repeated --rounds times; the best median of each engine is kept, with its p99):
  Reflex       `reflexd bench --json` (~2 s of windows, the total timed on windows run without
               per-layer timers, graph only: the
               [window] normalisation of the trained configs is not part of it)
  onnxruntime  CPUExecutionProvider, intra_op = inter_op = 1 thread, ORT_SEQUENTIAL,
               ORT_ENABLE_ALL; input and output bound once (IOBinding), run_with_iobinding
               per call: the Python call overhead is included (`ort_overhead_us` is the same
               loop on an Identity model)
  PyTorch      eager, torch.set_num_threads(1), eval, no_grad
Python engines: --warmup calls, then --iters timed calls (time.perf_counter_ns per call,
nearest-rank percentiles as bench_torch.py).

Physical limit per window = 2 * MACs / peak FLOP/s, with the peak from
`cargo run --release -p reflex-kernels --example fma_peak` (one core, f32 FMA, run once at
the start; --peak-gflops skips it). MACs and parameters are counted as `reflexd inspect` does.
On a shared machine absolute numbers are noisy; the ratios of the same run are what to read.

--export-onnx CONFIG OUT only exports one model as above (checked against io.safetensors and
onnxruntime against PyTorch) and exits: the loop latency harness's Python contender runs it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.torch import load_file

import bench_torch as bt  # tools/ is on sys.path as the script's own folder  (ROOT, VARIANTS, percentile)
from reflex import torch_ref as rt  # the model builder (pip install -e ./python)

SETS = {"bench": bt.ROOT / "examples" / "bench", "trained": bt.ROOT / "examples" / "models"}
OPSET = 17
REL_TOL = 1e-4


# --------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fma_peak() -> tuple[float, str]:
    """GFLOP/s and ISA name from the fma_peak example (cargo builds it if needed)."""
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "reflex-kernels", "--example", "fma_peak"],
        cwd=bt.ROOT, check=True, capture_output=True, text=True).stdout
    m = re.search(r"peak_gflops=([0-9.]+) isa=(\S+)", out)
    if not m:
        raise RuntimeError(f"fma_peak printed no peak_gflops line:\n{out}")
    return float(m.group(1)), m.group(2)


# --------------------------------------------------------------------------------- engines


def reflexd_bench(exe: str, cfg: Path, hop: int | None = None) -> dict:
    cmd = [exe, "bench", "--json", "--config", str(cfg)] + (["--hop", str(hop)] if hop else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["total"]


def time_calls(fn, iters: int, warmup: int) -> dict:
    """Per-call latency of fn() in µs, as bench_torch.bench measures it."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return {"median_us": bt.percentile(times, 50) / 1000.0, "p99_us": bt.percentile(times, 99) / 1000.0}


def ort_session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def ort_runner(sess: ort.InferenceSession, x: np.ndarray, out_shape):
    """A zero-argument call running one window, with input and output bound once."""
    binding = sess.io_binding()
    binding.bind_cpu_input(sess.get_inputs()[0].name, x)
    out = ort.OrtValue.ortvalue_from_numpy(np.zeros(out_shape, np.float32))
    binding.bind_ortvalue_output(sess.get_outputs()[0].name, out)
    return lambda: sess.run_with_iobinding(binding), out


def ort_overhead(tmp: Path, iters: int, warmup: int) -> dict:
    """The same timed loop on an Identity graph of the same input: Python + ORT call cost."""
    x = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 6, 128])
    y = onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 6, 128])
    g = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["input"], ["output"])], "id", [x], [y])
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    path = tmp / "identity.onnx"
    onnx.save(m, str(path))
    run, _ = ort_runner(ort_session(str(path)), np.zeros((1, 6, 128), np.float32), (1, 6, 128))
    return time_calls(run, iters, warmup)


# --------------------------------------------------------------------------------- per model


def explicit_same_pads(m: onnx.ModelProto) -> int:
    """Replace Conv auto_pad SAME_UPPER/SAME_LOWER by the equivalent explicit pads.

    The TorchScript exporter writes PyTorch's padding="same" as auto_pad="SAME_UPPER", which
    onnxruntime rejects for dilation > 1 ("Dilation not supported for AutoPadType::SAME_UPPER").
    Stride is 1 ("same" requires it), so total = dilation * (k - 1); SAME_UPPER puts the odd
    element at the end, i.e. left = total // 2 as in PyTorch. Returns the number of nodes changed.
    """
    changed = 0
    for n in m.graph.node:
        if n.op_type != "Conv":
            continue
        attrs = {a.name: a for a in n.attribute}
        mode = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
        if mode not in ("SAME_UPPER", "SAME_LOWER"):
            continue
        ks = list(attrs["kernel_shape"].ints)
        dil = list(attrs["dilations"].ints) if "dilations" in attrs else [1] * len(ks)
        if any(s != 1 for s in (attrs["strides"].ints if "strides" in attrs else [])):
            raise ValueError(f"{n.name}: auto_pad {mode} with stride != 1")
        totals = [d * (k - 1) for k, d in zip(ks, dil)]
        small = [t // 2 for t in totals]
        big = [t - t // 2 for t in totals]
        begin, end = (small, big) if mode == "SAME_UPPER" else (big, small)
        n.attribute.remove(attrs["auto_pad"])
        n.attribute.append(onnx.helper.make_attribute("pads", begin + end))
        changed += 1
    return changed


def export_checked(cfg: Path, path: Path, tag: str) -> dict:
    """The model of cfg, checked against its io.safetensors, exported to ONNX at path.

    onnxruntime's output is checked against PyTorch's on every io window (one per call):
    AssertionError beyond REL_TOL. Also used by the loop latency harness
    (`python tools/perf_compare.py --export-onnx CONFIG OUT.onnx`, tools/README.md).
    """
    model = rt.load_model(cfg)
    io = load_file(str(cfg.parent / "io.safetensors"))
    with torch.no_grad():
        ref = model(io["input"])
    rt.check_close(ref, io["output"], f"{tag}: PyTorch vs io.safetensors")

    x = io["input"][:1].contiguous()  # [1, 6, 128]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but needs no onnxscript
        torch.onnx.export(model, (x,), str(path), opset_version=OPSET, dynamo=False,
                          input_names=["input"], output_names=["output"], do_constant_folding=True)
    proto = onnx.load(str(path))
    explicit_same_pads(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    sess = ort_session(str(path))

    # ORT vs PyTorch on every io window, one window (batch 1) per call
    worst = 0.0
    for i in range(io["input"].shape[0]):
        xi = io["input"][i:i + 1].contiguous()
        got = sess.run(None, {"input": xi.numpy()})[0]
        want = ref[i:i + 1].numpy()
        rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
        worst = max(worst, rel)
    if worst > REL_TOL:
        raise AssertionError(f"{tag}: onnxruntime vs PyTorch rel. diff {worst:.2e} > {REL_TOL:g}")
    return {"model": model, "ref": ref, "x": x, "proto": proto, "sess": sess, "ort_rel_diff": worst}


def prepare(cfg: Path, tmp: Path, tag: str) -> dict:
    """PyTorch model (checked), its ONNX export (checked), the window to time."""
    e = export_checked(cfg, tmp / f"{tag.replace('/', '_')}.onnx", tag)
    model, ref, x, proto, sess, worst = e["model"], e["ref"], e["x"], e["proto"], e["sess"], e["ort_rel_diff"]

    run_ort, _ = ort_runner(sess, x.numpy(), tuple(ref[:1].shape))
    ops: dict[str, int] = {}
    for n in proto.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1

    def run_torch():
        model(x)

    return {"model": model, "run_ort": run_ort, "run_torch": run_torch, "ort_rel_diff": worst,
            "onnx_ops": ops, "params": rt.param_count(model), "macs": rt.mac_count(model)}


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda s: s["median_us"])


def measure(cfg: Path, tag: str, tmp: Path, args, peak_gflops: float) -> dict:
    p = prepare(cfg, tmp, tag)
    rx, ox, px = [], [], []
    length = p["model"].length
    hops = [h for h in args.hops if h < length]
    sx: dict[int, list] = {h: [] for h in hops}
    with torch.no_grad():
        for _ in range(args.rounds):  # interleaved: a noisy neighbour hits every engine alike
            rx.append(reflexd_bench(args.reflexd, cfg))
            ox.append(time_calls(p["run_ort"], args.iters, args.warmup))
            px.append(time_calls(p["run_torch"], args.iters, args.warmup))
            for h in hops:
                sx[h].append(reflexd_bench(args.reflexd, cfg, h))
    r, o, t = best(rx), best(ox), best(px)
    streaming = {h: best(v) for h, v in sx.items()}
    limit = 2.0 * p["macs"] / (peak_gflops * 1e9) * 1e6
    return {
        "model": tag, "config": str(cfg.relative_to(bt.ROOT)), "params": p["params"], "macs": p["macs"],
        "limit_us": limit,
        "reflex": r, "onnxruntime": o, "pytorch": t,
        "reflex_over_limit": r["median_us"] / limit,
        "ort_over_limit": o["median_us"] / limit,
        "reflex_over_ort": r["median_us"] / o["median_us"],
        "reflex_over_pytorch": r["median_us"] / t["median_us"],
        "ort_rel_diff": p["ort_rel_diff"], "onnx_ops": p["onnx_ops"],
        "length": length,
        # Streaming: windows that follow each other by the hop (reflexd bench --hop); a hop of
        # the window length or more is no overlap, i.e. the whole-window time above.
        "streaming": {str(h): s for h, s in streaming.items()},
        "streaming_over_ort": {str(h): s["median_us"] / o["median_us"] for h, s in streaming.items()},
        "rounds": {"reflex": rx, "onnxruntime": ox, "pytorch": px,
                   "streaming": {str(h): v for h, v in sx.items()}},
    }


# --------------------------------------------------------------------------------- main


HEADER = ("| model | params | MACs | limit µs | Reflex med | Reflex p99 | ORT med | ORT p99 | "
          "PyTorch med | PyTorch p99 | Reflex ÷ limit | ORT ÷ limit | Reflex ÷ ORT |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def row(m: dict) -> str:
    r, o, t = m["reflex"], m["onnxruntime"], m["pytorch"]
    return (f"| {m['model']} | {m['params']:,} | {m['macs']:,} | {m['limit_us']:.1f} | "
            f"{r['median_us']:.1f} | {r['p99_us']:.1f} | {o['median_us']:.1f} | {o['p99_us']:.1f} | "
            f"{t['median_us']:.1f} | {t['p99_us']:.1f} | {m['reflex_over_limit']:.1f}× | "
            f"{m['ort_over_limit']:.1f}× | {m['reflex_over_ort']:.2f} |")


def stream_table(models: list[dict], hops: list[int]) -> str:
    """Per-window median µs against the hop, beside whole windows and onnxruntime's time."""
    head = ("| model | " + " | ".join(f"hop {h}" for h in hops) + " | whole window | ORT whole | "
            + " | ".join(f"hop {h} ÷ ORT" for h in hops) + " |")
    lines = [head, "|---|" + "---:|" * (2 * len(hops) + 2)]
    for m in models:
        whole, ort_us = m["reflex"]["median_us"], m["onnxruntime"]["median_us"]
        # A hop of the window length or more is no overlap: every window is whole.
        us = [m["streaming"][str(h)]["median_us"] if str(h) in m["streaming"] else whole for h in hops]
        lines.append(f"| {m['model']} | " + " | ".join(f"{u:.1f}" for u in us) + f" | {whole:.1f} | {ort_us:.1f} | "
                     + " | ".join(f"{u / ort_us:.2f}" for u in us) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reflexd", default=str(bt.ROOT / "target" / "release" / "reflexd"))
    ap.add_argument("--rounds", type=int, default=2, help="alternations per model; best median kept")
    ap.add_argument("--iters", type=int, default=3000, help="timed calls per Python engine and round (>= 2000)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--peak-gflops", type=float, help="skip fma_peak and use this peak")
    ap.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    ap.add_argument("--only", nargs="+", choices=bt.VARIANTS, default=list(bt.VARIANTS))
    ap.add_argument("--json", action="store_true", help="one JSON object instead of Markdown")
    ap.add_argument("--hops", nargs="*", type=int, default=[1, 4, 16, 64, 128],
                    help="streaming: reflexd bench --hop for each (a hop >= the window is a whole window)")
    ap.add_argument("--export-onnx", nargs=2, metavar=("CONFIG", "OUT"),
                    help="only export CONFIG's model to OUT.onnx, checked as above, and exit")
    args = ap.parse_args()
    if args.export_onnx:
        cfg, out = (Path(p) for p in args.export_onnx)
        e = export_checked(cfg, out, str(cfg.parent))
        print(f"exported {out}: onnxruntime vs PyTorch rel. diff {e['ort_rel_diff']:.2e}")
        return
    if args.iters < 2000:
        ap.error("--iters must be at least 2000")
    if not os.access(args.reflexd, os.X_OK):
        ap.error(f"{args.reflexd} not found: run `cargo build --release --workspace` first")

    torch.set_num_threads(1)
    if args.peak_gflops:
        peak, isa = args.peak_gflops, "given"
    else:
        peak, isa = fma_peak()
    reflexd_version = subprocess.run([args.reflexd, "--version"], capture_output=True, text=True).stdout.strip()
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(), "machine": platform.machine(), "logical_cpus": os.cpu_count(),
        "peak_gflops": peak, "peak_isa": isa,
        "versions": {"reflexd": reflexd_version, "python": platform.python_version(),
                     "torch": torch.__version__, "onnxruntime": ort.__version__,
                     "onnx": onnx.__version__, "numpy": np.__version__},
        "onnx_opset": OPSET, "rounds": args.rounds, "iters": args.iters, "warmup": args.warmup,
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="reflex_onnx_") as d:
        tmp = Path(d)
        meta["ort_overhead"] = ort_overhead(tmp, args.iters, args.warmup)
        if not args.json:
            v = meta["versions"]
            print(f"{meta['date']} — CPU: {meta['cpu']} ({meta['machine']}, {meta['logical_cpus']} logical CPUs)")
            print(f"{v['reflexd']}; Python {v['python']}, torch {v['torch']}, onnxruntime {v['onnxruntime']}, "
                  f"onnx {v['onnx']} (opset {OPSET}), numpy {v['numpy']}")
            print(f"peak f32 FMA, one core: {peak:.1f} GFLOP/s ({isa}); limit = 2 × MACs ÷ peak")
            print(f"all engines 1 thread, batch 1; best median of {args.rounds} interleaved rounds; "
                  f"{args.iters} timed calls per Python engine and round; times in µs per window")
            print(f"onnxruntime call overhead (Identity graph, same loop): median "
                  f"{meta['ort_overhead']['median_us']:.1f} µs, p99 {meta['ort_overhead']['p99_us']:.1f} µs")
        for s in args.sets:
            if not args.json:
                print(f"\n### {s} models ({SETS[s].relative_to(bt.ROOT)}/)\n")
                print(HEADER, flush=True)
            done = []
            for v in args.only:
                m = measure(SETS[s] / v / "reflex.toml", f"{s}/{v}", tmp, args, peak)
                done.append(m)
                if not args.json:
                    print(row(m), flush=True)
            results += done
            if not args.json and args.hops:
                print(f"\nStreaming ({s}): Reflex median µs per window against the hop (reflexd bench --hop), "
                      f"same rounds\n")
                print(stream_table(done, args.hops), flush=True)
    if args.json:
        print(json.dumps({"meta": meta, "models": results}, indent=1))
    else:
        print("\nReflex ÷ limit: how many times the FMA-bound time Reflex takes (1.0 = every FMA unit "
              "busy every cycle). Reflex ÷ ORT < 1: Reflex faster.")


if __name__ == "__main__":
    main()
