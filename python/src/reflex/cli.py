"""The `reflex` command: one subcommand per task (`import-onnx`, `verify`, `compare`, `dataset add`).

Each subcommand is a function `cmd_NAME(args) -> int` registered in `_parser()`; errors a user
can cause print one line per problem to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ._errors import ExportError, ReflexdError, VerifyError
from .dataset import DatasetError


def cmd_import_onnx(args: argparse.Namespace) -> int:
    from ._onnx import from_onnx

    labels = [x for x in args.labels.split(",") if x] if args.labels else None
    res = from_onnx(args.model, args.out_dir, hop=args.hop, labels=labels, length=args.length,
                    verify=not args.no_verify)
    print(f"wrote {res.config} and {res.weights}: {len(res.layers)} layers "
          f"({', '.join(res.plugins)})" + (f"; reflexd agrees (max error {res.max_error:.2e})" if res.verified else ""))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ._verify import verify

    rep = verify(args.out_dir, windows=args.windows)
    print(f"{args.out_dir}: reflexd and the PyTorch reference agree on {rep.windows} windows "
          f"(max error {rep.max_error:.2e}, {rep.max_ratio:.3f}× the docs/layers.md tolerance)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .compare import Options, run_compare, report_markdown

    opts = Options(dataset=Path(args.dataset), out=Path(args.out), window=args.window, hop=args.hop,
                   variants=[v for v in args.variants.split(",") if v] if args.variants else [],
                   epochs=args.epochs, seeds=args.seeds,
                   test_subjects=[s for s in args.test_subjects.split(",") if s] if args.test_subjects else None,
                   folds=args.folds, threads=args.threads, width=args.width, kernel=args.kernel,
                   bench_repeats=args.bench_repeats, progress=not args.quiet)
    try:
        rep = run_compare(opts)
    except KeyboardInterrupt:
        print(f"reflex compare: interrupted; {args.out} holds only complete models (rerun to resume)",
              file=sys.stderr)
        return 130
    print(report_markdown(rep))
    print(f"wrote {Path(args.out) / 'report.md'}, report.json, plots and one model folder per variant")
    return 0


def cmd_dataset_add(args: argparse.Namespace) -> int:
    from .collect import add_recording

    res = add_recording(args.log, args.dataset, subject=args.subject, split=args.split, rate_hz=args.rate_hz)
    spans = ", ".join(f"{k or 'unlabelled'} {v}" for k, v in res.per_label.items())
    print(f"added {res.csv} (subject {args.subject}{', ' + args.split if args.split else ''}): "
          f"{res.samples} samples, {res.marks} marks; samples per label: {spans}")
    for note in res.notes:
        print(f"reflex dataset: warning: {note}", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="reflex", description="Reflex models from PyTorch or ONNX (docs/python.md).")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("import-onnx", help="ONNX model -> OUT_DIR/reflex.toml + weights.safetensors")
    p.add_argument("model", help="MODEL.onnx (opset >= 13, input [N, C, L])")
    p.add_argument("out_dir")
    p.add_argument("--hop", type=int, default=1, help="window.hop (default 1)")
    p.add_argument("--labels", help="comma-separated class names: output.kind = classify")
    p.add_argument("--length", type=int, help="window length when the model's time axis is symbolic")
    p.add_argument("--no-verify", action="store_true", help="skip the check against reflexd")
    p.set_defaults(func=cmd_import_onnx)
    p = sub.add_parser("verify", help="re-run the agreement check of OUT_DIR against reflexd")
    p.add_argument("out_dir")
    p.add_argument("--windows", type=int, default=16)
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("compare", help="train the five convolution variants on a dataset, evaluate through "
                       "reflexd replay, report (docs/compare.md)")
    p.add_argument("dataset", help="dataset folder (recordings.csv, csv files, optional dataset.toml)")
    p.add_argument("--out", required=True, help="output folder (nothing is written outside it)")
    p.add_argument("--window", type=int, default=128, help="window length in samples (default 128)")
    p.add_argument("--hop", type=int, default=64,
                   help="hop of the training windows and of the configs (default 64)")
    p.add_argument("--variants", help="comma-separated, default standard,dilated,depthwise,grouped,residual")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--test-subjects", help="comma-separated held-out subjects (without a split column)")
    p.add_argument("--folds", type=int, help="K folds by subject (without a split column)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--width", type=int, default=32, help="channels of every convolution (default 32)")
    p.add_argument("--kernel", type=int, default=5, help="kernel size (default 5)")
    p.add_argument("--bench-repeats", type=int, default=3,
                   help="reflexd bench runs per measurement; the lowest median counts (default 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("dataset", help="build a dataset from labelled recordings (docs/compare.md)")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    p = dsub.add_parser("add", help="append a recording labelled with `reflexd label` to a dataset")
    p.add_argument("log", help="LOG.mcap, recorded by `reflexd run --record` with [labels] listen")
    p.add_argument("dataset", help="the dataset folder (created when missing)")
    p.add_argument("--subject", required=True, help="who wore the IMU")
    p.add_argument("--split", choices=["train", "test"], help="the split column's value for this recording")
    p.add_argument("--rate-hz", type=float,
                   help="t = sample / rate, for recordings whose samples' t does not increase")
    p.set_defaults(func=cmd_dataset_add)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ExportError as e:
        for problem in e.problems:
            print(f"reflex {args.command}: {problem}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:  # an optional dependency (extra) is not installed
        extra = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime", "matplotlib": "compare",
                 "tqdm": "compare"}.get((e.name or "").split(".")[0], "all")
        print(f"reflex {args.command}: needs {e.name}: pip install 'reflex-imu[{extra}]'", file=sys.stderr)
        return 1
    except (VerifyError, ReflexdError, DatasetError, FileNotFoundError, ValueError) as e:
        print(f"reflex {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
