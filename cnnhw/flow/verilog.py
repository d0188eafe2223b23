"""Verilog export: the accelerator of a (QGraph, HardwarePlan) as one Verilog file plus a manifest.

``rtl_out/<model>/`` receives ``<top>.v`` and ``manifest.json`` (ports, stream formats, the
plan, per-layer formats and predicted cycles). The output is byte-identical for identical
inputs (no source paths or timestamps are embedded), and written atomically: the folder is
assembled beside its destination and renamed into place.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..gateware.accelerator import Accelerator
from ..hardware import HardwarePlan, Network
from ..outputs import replace_folder, staging_folder
from ..quant.qgraph import QGraph


def identifier(name: str) -> str:
    """A Verilog/file-system safe version of a model or layer name."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "model"
    return cleaned if cleaned[0].isalpha() else f"m_{cleaned}"


@dataclass(frozen=True)
class Export:
    folder: Path
    verilog: Path
    manifest: Path
    top: str
    accelerator: Accelerator


def _fmt(fmt) -> dict:
    return {"bits": fmt.bits, "signed": fmt.signed}


def manifest(qgraph: QGraph, plan: HardwarePlan, accelerator: Accelerator, top: str) -> dict:
    network = Network(qgraph, plan)
    cycles = network.cycles()
    first, last = qgraph.layers[0], qgraph.layers[-1]
    return {
        "generator": f"cnnhw {__version__}",
        "model": qgraph.graph.name,
        "top": top,
        "clock": "clk (rising edge), synchronous reset rst (active high)",
        "streams": {
            "i": {"format": _fmt(first.in_format), "scale": qgraph.input.scale, "order": "HWC",
                  "shape": list(qgraph.graph.input_shape), "elements_per_image": math.prod(qgraph.graph.input_shape)},
            "o": {"format": _fmt(last.out_format), "scale": last.out_scale, "elements_per_image":
                  math.prod(last.out_shape), "order": [int(v) for v in accelerator.output_order]},
            "cls": {"classes": accelerator.classes},
        },
        "handshake": "amaranth.lib.stream: a transfer happens on a rising edge where valid and ready are both 1",
        "stages": [
            {"probe": f"probe{k}", "layer": name, "op": stage.layer.label, "format": _fmt(stage.layer.out_format),
             "predicted_cycles": cycles[name]}
            for k, (name, stage) in enumerate(accelerator.stages)
        ],
        "plan": plan.to_json(),
        "predicted_cycles_per_inference": network.cycles_per_inference,
        "quantization": {"calibration": qgraph.calibration, "rounding": qgraph.options.rounding},
    }


def export_verilog(qgraph: QGraph, plan: HardwarePlan, folder: Path) -> Export:
    """Generate the accelerator and write ``folder`` (replacing it whole if it exists; the caller
    has accepted the path with :func:`cnnhw.outputs.check_output`)."""
    from amaranth.back import verilog

    folder = Path(folder)
    top = f"cnnhw_{identifier(qgraph.graph.name)}"
    accelerator = Network(qgraph, plan).accelerator()
    text = verilog.convert(accelerator, name=top, emit_src=False)
    facts = manifest(qgraph, plan, accelerator, top)
    staging = staging_folder(folder, "rtl")
    try:
        (staging / f"{top}.v").write_text(text)
        (staging / "manifest.json").write_text(json.dumps(facts, indent=2) + "\n")
        replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Export(folder, folder / f"{top}.v", folder / "manifest.json", top, accelerator)
