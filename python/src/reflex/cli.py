"""The `reflex` command: one subcommand per task (`import-onnx`, `verify`; `compare` comes with training).

Each subcommand is a function `cmd_NAME(args) -> int` registered in `_parser()`; errors a user
can cause print one line per problem to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ._errors import ExportError, ReflexdError, VerifyError


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
          f"(max error {rep.max_error:.2e}, {rep.max_ratio:.3f}× the SPEC §3 tolerance)")
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="reflex", description="Reflex models from PyTorch or ONNX (SPEC §9).")
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
        extra = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime"}.get((e.name or "").split(".")[0], "all")
        print(f"reflex {args.command}: needs {e.name}: pip install 'reflex-imu[{extra}]'", file=sys.stderr)
        return 1
    except (VerifyError, ReflexdError, FileNotFoundError, ValueError) as e:
        print(f"reflex {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
