"""Human-readable reports (tables on the terminal) and their JSON twins."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .ir import Graph
from .ir.graph import INPUT


def shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


def graph_facts(graph: Graph) -> dict:
    """What ``cnnhw inspect --json`` writes."""
    return {
        "name": graph.name,
        "source": graph.source,
        "input_shape": list(graph.input_shape),
        "output_shape": list(graph.output_shape),
        "layers": [
            {
                "name": layer.op.name,
                "op": layer.op.label,
                "input_shape": list(layer.in_shape),
                "output_shape": list(layer.out_shape),
                "params": layer.op.params,
                "macs": layer.macs,
                "attributes": layer.op.describe(),
                "inputs": list(layer.inputs),
            }
            for layer in graph.layers
        ],
        "params": graph.params,
        "macs": graph.macs,
    }


#: A layer table shows this many first and last layers of a longer graph.
SHOWN_LAYERS = 50


def _shown(rows: list) -> list:
    """``rows``, or its first and last :data:`SHOWN_LAYERS` with an int (how many are left out)
    between them: rows beyond a screenful say nothing more and take seconds to lay out."""
    hidden = len(rows) - 2 * SHOWN_LAYERS
    return rows if hidden <= 0 else [*rows[:SHOWN_LAYERS], hidden, *rows[-SHOWN_LAYERS:]]


def _elision_row(table: Table, hidden: int, column: int) -> None:
    cells = [""] * len(table.columns)
    cells[column] = f"... {hidden:,} more layers (all of them in --json)"
    table.add_row(*cells)


def graph_table(graph: Graph) -> Table:
    table = Table(title=f"{graph.name}  ({graph.source}, input {shape_text(graph.input_shape)})")
    for column, justify in (("#", "right"), ("layer", "left"), ("op", "left"), ("attributes", "left"),
                            ("output", "right"), ("params", "right"), ("MACs", "right")):
        table.add_column(column, justify=justify)
    names = [INPUT] + [layer.op.name for layer in graph.layers]
    for row in _shown(list(enumerate(graph.layers))):
        if isinstance(row, int):
            _elision_row(table, row, 1)
        else:
            index, layer = row
            attributes = layer.op.describe()
            if layer.inputs != (names[index],):  # a join, or a branch that does not read the layer above
                attributes = " ".join(filter(None, (attributes, "reads " + ", ".join(layer.inputs))))
            table.add_row(str(index), layer.op.name, layer.op.label, attributes, shape_text(layer.out_shape),
                          f"{layer.op.params:,}", f"{layer.macs:,}")
    table.add_section()
    table.add_row("", "total", "", "", "", f"{graph.params:,}", f"{graph.macs:,}")
    return table


def console() -> Console:
    """The stdout console (no colours when not a terminal, so logs and tests stay plain). Markup is
    off: model and layer names are the model's text (``[/bold]`` is a legal node name)."""
    return Console(highlight=False, markup=False, width=120)


def _requant_text(layer) -> str:
    rule = getattr(layer, "requant", None) or getattr(layer, "divider", None)
    return rule.describe() if rule is not None else ""


def quant_facts(qgraph, errors=None) -> dict:
    """What ``cnnhw quantize --json`` writes (accuracy keys are added by the command)."""
    errors = {e.name: e for e in errors or ()}
    options = qgraph.options
    layers = []
    for layer in qgraph.layers:
        entry = {
            "name": layer.name, "op": layer.label, "input_format": str(layer.in_format),
            "output_format": str(layer.out_format), "input_scale": layer.in_scale, "output_scale": layer.out_scale,
        }
        if hasattr(layer, "requant"):
            entry.update(activation=layer.activation, **layer.requant.facts())
        if hasattr(layer, "weight_format"):
            entry.update(weight_format=str(layer.weight_format), accumulator_bits=layer.acc_format.bits)
        if hasattr(layer, "in_formats"):  # a join: each input's format and scale
            entry.update(input_formats=[str(f) for f in layer.in_formats], input_scales=list(layer.in_scales))
        if layer.name in errors:
            entry.update(sqnr_db=errors[layer.name].sqnr_db, max_error_lsb=errors[layer.name].max_error_lsb)
        layers.append(entry)
    return {
        "calibration": qgraph.calibration,
        "options": {"weight_bits": options.weight_bits, "activation_bits": options.activation_bits,
                    "output_bits": options.output_bits, "multiplier_bits": options.multiplier_bits,
                    "per_channel": options.per_channel, "power_of_two": options.power_of_two,
                    "rounding": options.rounding},
        "input": {"format": str(qgraph.input.format), "scale": qgraph.input.scale},
        "dropped": qgraph.dropped or None,
        "layers": layers,
    }


def model_facts(qgraph, x=None) -> dict:
    """build.json's ``graph`` and ``quantization``: the model's layers, and each layer's formats and
    its error against the float model on the calibration images ``x`` (no errors without them)."""
    from .golden.evaluate import layer_errors

    errors = layer_errors(qgraph, x) if x is not None else None
    quantization = quant_facts(qgraph, errors)
    if errors is not None:
        quantization["errors_measured_on"] = f"{len(x)} calibration images"
    return {"graph": graph_facts(qgraph.graph), "quantization": quantization}


def quant_table(qgraph, errors=None, measured_on: str | None = None) -> Table:
    errors = {e.name: e for e in errors or ()}
    title = (f"{qgraph.graph.name} quantized: input {qgraph.input.format} (scale {qgraph.input.scale:.4g}), "
             f"ranges from {qgraph.calibration}")
    table = Table(title=title, caption=(f"SQNR and max error of each layer's output vs float on {measured_on}"
                                        if measured_on else "no data to measure errors on (give --calib or --eval)"))
    for column, justify in (("layer", "left"), ("op", "left"), ("in", "left"), ("weights", "left"), ("acc", "left"),
                            ("requantize", "left"), ("act", "left"), ("out", "left"), ("SQNR dB", "right"),
                            ("max err LSB", "right")):
        table.add_column(column, justify=justify)
    for layer in _shown(list(qgraph.layers)):
        if isinstance(layer, int):
            _elision_row(table, layer, 0)
            continue
        linear = hasattr(layer, "weight_format")
        error = errors.get(layer.name)
        table.add_row(
            layer.name, layer.label, str(layer.in_format),
            (f"{layer.weight_format}{' /ch' if qgraph.options.per_channel else ''}" if linear else ""),
            (f"s{layer.acc_format.bits}" if linear else (f"s{layer.sum_format.bits}" if getattr(layer, "sum_format", None) else "")),
            _requant_text(layer), "" if getattr(layer, "activation", "none") == "none" else layer.activation,
            str(layer.out_format),
            "" if error is None else f"{error.sqnr_db:.1f}",
            "" if error is None else f"{error.max_error_lsb:.2f}",
        )
    if qgraph.dropped:
        table.add_row(f"({qgraph.dropped.lower()})", "dropped", "", "", "", "", "", "", "", "")
    return table


def sim_table(name: str, result, predicted: int, predicted_latency: int, has_classes: bool = True) -> Table:
    table = Table(title=f"{name}: RTL simulation ({result.simulator}, {result.images} images)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("bit-exact (every layer, every element)", "yes" if result.bit_exact else "NO")
    table.add_row("mismatching layers", str(len(result.mismatches)))
    if has_classes:
        table.add_row("mismatching classes", str(result.class_mismatches))
    table.add_row("cycles per inference (steady state)", f"{result.cycles_per_inference:,.0f}")
    table.add_row("cycles per inference (plan's prediction)", f"{predicted:,}")
    table.add_row("latency (first input to class), cycles", f"{result.latency_cycles:,}")
    table.add_row("latency (plan's prediction), cycles", f"{predicted_latency:,}")
    table.add_row("simulated cycles", f"{result.cycles:,}")
    table.add_row("simulation speed, cycles/s", f"{result.cycles_per_second:,.0f}")
    table.add_row("build / run time, s", f"{result.build_seconds:.1f} / {result.run_seconds:.1f}")
    return table


def plan_table(title: str, plan, costs, budget: dict[str, int], cycles_per_inference: int,
               coupled: list[str] = ()) -> Table:
    """The plan's cost model, layer by layer (``plan.costs.plan_costs``), with the board's budget
    and the pipeline's cycles per inference (``Network.cycles_per_inference``). *products*: PE x
    SIMD and how they are made (a DSP each, packed two per DSP, or in logic). The cycles of a
    ``coupled`` stage (``Network.coupled``) are an upper estimate, marked ``<=``."""
    table = Table(title=title)
    for column, justify in (("layer", "left"), ("op", "left"), ("products", "left"), ("weights", "left"),
                            ("cycles", "right"), ("DSP", "right"), ("logic cells", "right"), ("EBR", "right"),
                            ("SPRAM", "right"), ("weight bits/cycle", "right")):
        table.add_column(column, justify=justify, no_wrap=column in ("layer", "products"))
    for cost in costs:
        folding = plan.for_layer(cost.name)
        weighted = cost.weight_bits_per_cycle > 0
        how = "in logic" if folding.logic_products else "packed" if folding.packed else "on DSPs"
        table.add_row(cost.name, cost.op, f"{folding.pe} x {folding.simd} {how}" if weighted else "",
                      folding.weights if weighted else "",
                      (f"<= {cost.cycles:,}" if cost.name in coupled else f"{cost.cycles:,}") if cost.cycles else "",
                      str(cost.dsp or ""), f"{cost.logic_cells:,}" if cost.logic_cells else "", str(cost.ebr or ""),
                      str(cost.spram or ""), f"{cost.weight_bits_per_cycle:,}" if weighted else "")
    table.add_section()
    total = {key: sum(getattr(cost, key) for cost in costs) for key in ("dsp", "logic_cells", "ebr", "spram")}
    table.add_row("total / budget", "", "", "", f"{cycles_per_inference:,}",
                  f"{total['dsp']}/{budget['dsp']}", f"{total['logic_cells']:,}/{budget['logic_cells']:,}",
                  f"{total['ebr']}/{budget['ebr']}", f"{total['spram']}/{budget['spram']}", "")
    from .plan.logic import typical_error

    table.caption = (f"logic cells are estimated (mean error {typical_error(plan.family):.1%}, either way): the build packs the "
                     f"netlist and plans again if it is over")
    if coupled:
        table.caption += (f"; {', '.join(coupled)} without line-buffer overlap waits at each image boundary for rows "
                          f"of the stages before, which it stalls: the total is the timing model's")
    return table


def boards_table(boards) -> Table:
    table = Table(title="boards")
    for column, justify in (("board", "left"), ("family", "left"), ("device", "left"), ("logic", "right"),
                            ("DSP", "right"), ("block RAM", "right"), ("SPRAM", "right"), ("clock in", "right"),
                            ("PLL clocks", "left"), ("UART max", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for b in boards:
        block = b.family.memory_primitives(b)[0]
        kbit = max(depth * width for depth, width in block.aspects) // 1024
        table.add_row(b.name, b.family.name, b.device, f"{b.budget['logic_cells']:,}",
                      str(b.budget["dsp"]), f"{b.budget['ebr']} x {kbit}K", str(b.budget["spram"] or ""),
                      f"{b.input_mhz:g} MHz", _clock_list(b.clocks_mhz), f"{b.uart_bauds[0] / 1e6:g} Mbaud")
    first = {}
    for b in boards:
        first.setdefault(b.family.name, b)
    table.caption = "; ".join(f"{name}: logic in {b.family.resource_names['logic_cells']}, DSP "
                              f"{b.family.dsp.primitive}, block RAM {b.family.memory_primitives(b)[0].name} (Kbit)"
                              for name, b in first.items())
    return table


def _clock_list(mhz: list[float]) -> str:
    """``12, 15, ..., 48 MHz``: the first two and the last of a long list."""
    shown = [f"{f:g}" for f in mhz]
    return ", ".join(shown if len(shown) <= 4 else [*shown[:2], "...", shown[-1]]) + " MHz"


def build_table(facts: dict) -> Table:
    """The summary of ``cnnhw build`` (the same facts as build.json)."""
    from .families import family

    names = family(facts.get("family", "ice40")).resource_names
    table = Table(title=f"{facts['model']} on {facts['board']} ({facts['device']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("of", justify="right")
    table.add_column("use", justify="right")
    table.add_column("planned", justify="right")
    predicted = facts.get("predicted", {})
    for key, usage in facts["resources"].items():
        used, total = usage["used"], usage["total"]
        planned = predicted.get(key)
        if planned is not None and key == "logic_cells":  # an estimate: show how far off it was
            planned = f"{planned:,} ({(planned - used) / used:+.1%})" if used else f"{planned:,}"
        table.add_row(names.get(key, key), f"{used:,}", f"{total:,}", f"{used / total:.0%}" if total else "",
                      "" if planned is None else str(planned))
    table.add_section()
    table.add_row("clock (PLL), MHz", f"{facts['clock_mhz']:g}")
    table.add_row("Fmax (nextpnr), MHz", f"{facts['fmax_mhz']:.1f}")
    table.add_row("timing met", "yes" if facts["timing_met"] else "NO")
    table.add_section()
    verified = facts.get("verified")
    if verified:
        table.add_row("Verilog verified (Verilator, every layer ==)",
                      f"{verified['images']} images bit-exact" if verified["bit_exact"] else "NO")
    else:
        table.add_row("Verilog verified", "NOT verified (--no-verify)")
    cycles, bound = facts["cycles_per_inference"], facts["bound_cycles"]
    table.add_row("cycles per inference (plan)", f"{cycles:,}")
    if verified:
        table.add_row("cycles per inference (simulated)", f"{verified['cycles_per_inference']:,.0f}", "",
                      f"{(verified['cycles_per_inference'] - cycles) / cycles:+.1%}")
    if "latency_cycles" in facts:
        table.add_row("latency, first input to class (plan), cycles", f"{facts['latency_cycles']:,}")
    if verified:
        table.add_row("latency (simulated), cycles", f"{verified['latency_cycles']:,}")
    table.add_row("bound: MACs / DSPs, cycles", f"{bound:,}", "", f"{cycles / bound:.2f}x")
    table.add_row("products per cycle (multipliers)", str(facts["multipliers"]))
    table.add_row("compute per inference, us", f"{facts['microseconds_per_inference']:,.1f}")
    table.add_row(f"sending one image at {facts['link_baud'] / 1e6:g} Mbaud, us",
                  f"{facts['link_microseconds_per_image']:,.1f}")
    table.add_row("images per second (the slower of the two)", f"{facts['images_per_second']:,.0f}")
    if facts.get("weight_image"):
        image = facts["weight_image"]
        table.add_row(f"weight image (flash at {image['offset']:#x}), bytes", f"{image['bytes']:,}")
    cells = facts["resources"].get("logic_cells", {}).get("total", 0)
    for refit in facts.get("refits", []):  # plans over the logic cells, built before this one
        estimated = refit.get("estimated_logic_cells")
        table.add_row(f"plan with {refit['dsp']} DSPs ({refit['cycles_per_inference']:,} cycles): logic cells",
                      f"{refit['logic_cells']:,}", f"{cells:,}", f"{refit['logic_cells'] / cells:.0%}" if cells else "",
                      f"{estimated:,}: did not fit" if estimated is not None else "did not fit")
    table.add_row("build time, s", f"{facts['build_seconds']:.0f}")
    return table


def board_sim_table(name: str, board: str, result) -> Table:
    table = Table(title=f"{name}: {board} board top over the UART ({result.simulator}, {result.clock_mhz:g} MHz, "
                        f"{result.divisor} cycles per bit)")
    table.add_column("step")
    table.add_column("result", justify="right")
    for label, ok in result.checks:
        table.add_row(label, "ok" if ok else "FAILED")
    table.add_section()
    table.add_row("results equal to the golden model (logits and class)", f"{result.classified} of {result.results}")
    if result.weight_image_bytes:
        table.add_row("weight image read from the flash model at power-up, bytes", f"{result.weight_image_bytes:,}")
    table.add_row("build / run time, s", f"{result.build_seconds:.1f} / {result.run_seconds:.1f}")
    return table
