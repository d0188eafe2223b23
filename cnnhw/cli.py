"""The ``cnnhw`` command line.

Every user error is one line on stderr (``cnnhw: error: ...``) and exit status 2; a
traceback means a bug in cnnhw.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .errors import CnnhwError

log = logging.getLogger("cnnhw")


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_positional", nargs="?", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--model", "-m", metavar="MODEL", help="the model: .onnx, or .npz weights + architecture")


def _model_path(args) -> Path:
    given = [m for m in (args.model, args.model_positional) if m]
    if not given:
        raise CnnhwError("no model given; pass --model MODEL (an .onnx or .npz file)")
    if len(given) == 2 and given[0] != given[1]:
        raise CnnhwError(f"two models given ({given[0]} and {given[1]}); pass one --model")
    return Path(given[0])


def _load(args):
    from .frontend import load_model

    started = time.perf_counter()
    graph = load_model(_model_path(args))
    log.info("loaded %s: %d layers in %.2f s", graph.name, len(graph.layers), time.perf_counter() - started)
    return graph


def cmd_inspect(args) -> None:
    from .outputs import write_json
    from .report import console, graph_facts, graph_table

    graph = _load(args)
    console().print(graph_table(graph))
    if args.json:
        write_json(args.json, {"model": str(_model_path(args)), **graph_facts(graph)})


def cmd_predict(args) -> None:
    from .datafiles import load_data
    from .golden import run_float
    from .outputs import write_json, write_npz
    from .report import console

    graph = _load(args)
    data = load_data(args.inputs, graph)
    started = time.perf_counter()
    outputs = run_float(graph, data.x)
    log.info("ran the %s model on %d images in %.2f s", args.golden, len(data.x), time.perf_counter() - started)
    logits = outputs.reshape(len(outputs), -1).astype(np.float32)
    classes = logits.argmax(axis=1)
    facts = {"model": str(_model_path(args)), "golden": args.golden, "images": int(len(classes)),
             "classes": classes.tolist()}
    out = console()
    if data.y is not None:
        accuracy = float(np.mean(classes == data.y))
        facts["accuracy"] = accuracy
        out.print(f"{args.golden} model: {accuracy:.2%} top-1 accuracy on {len(classes)} images "
                  f"({int(np.sum(classes == data.y))} correct)")
    else:
        shown = " ".join(map(str, classes[:20])) + (" ..." if len(classes) > 20 else "")
        out.print(f"{args.golden} model: classes of {len(classes)} images: {shown}")
    if args.output:
        write_npz(args.output, logits=logits, classes=classes.astype(np.int64))
    if args.json:
        write_json(args.json, facts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnhw", description="Turn a trained CNN into verified FPGA hardware.")
    parser.add_argument("--version", action="version", version=f"cnnhw {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print results only, no progress lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inspect = commands.add_parser("inspect", help="layers, shapes, parameters and MACs of a model")
    _add_model(inspect)
    inspect.add_argument("--json", metavar="FILE", help="also write the facts as JSON")
    inspect.set_defaults(run=cmd_inspect)

    predict = commands.add_parser("predict", help="run the model in software on a DATA file")
    _add_model(predict)
    predict.add_argument("--inputs", "-i", required=True, metavar="DATA", help=".npz with x (N, C, H, W) and optional y")
    predict.add_argument("--golden", choices=("float",), default="float",
                         help="which software model to run (float: the float reference)")
    predict.add_argument("-o", "--output", metavar="OUT.npz", help="write logits (N, classes) and classes (N,)")
    predict.add_argument("--json", metavar="FILE", help="also write the facts as JSON")
    predict.set_defaults(run=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s",
                        stream=sys.stderr, force=True)
    try:
        args.run(args)
    except CnnhwError as error:
        print(f"cnnhw: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("cnnhw: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
