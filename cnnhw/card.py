"""The model card of a build: ``DIR/report.html``, one self-contained page (styles inline, plots as
inline SVG drawn by matplotlib, no script and nothing fetched) made from build.json's facts alone,
so that ``cnnhw report DIR`` makes it again from the folder.

Every number the page states is a build.json value and names it: ``<span data-key="layer_costs.2.cycles">
1,234</span>`` shows the value at that path (list items by index), rounded as shown; numbers appear
nowhere else in the text (the plots draw the same values, their text as paths). The tests hold the page
to that, number by number.
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path

from .errors import CnnhwError
from .outputs import write_atomically

CARD_FILE = "report.html"

#: The resources shown, in this order, with the names people use for them.
RESOURCE_NAMES = {"logic_cells": "logic cells", "dsp": "DSPs", "ebr": "block RAMs", "spram": "SPRAM blocks",
                  "io": "I/O pins", "pll": "PLLs"}


def value_at(facts: dict, key: str):
    """The build.json value at a dotted path (``layer_costs.2.cycles``); CnnhwError if there is none."""
    value = facts
    try:
        for part in key.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
    except (KeyError, IndexError, TypeError, ValueError):
        raise CnnhwError(f"build.json has no {key}: the folder was built by another version of cnnhw, or changed "
                         f"since; build it again") from None
    return value


def format_number(value, digits: int = 0) -> str:
    """How the card writes a number: thousands separated, ``digits`` decimals for a float."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


class _Card:
    """The page being written: facts in, HTML fragments out, each number tagged with its key."""

    def __init__(self, facts: dict):
        self.facts = facts
        self.parts: list[str] = []

    def has(self, key: str) -> bool:
        try:
            return value_at(self.facts, key) is not None
        except CnnhwError:
            return False

    def num(self, key: str, digits: int = 0) -> str:
        return f'<span class="n" data-key="{key}">{format_number(value_at(self.facts, key), digits)}</span>'

    def text(self, key: str) -> str:
        return f'<span data-key="{key}">{html.escape(str(value_at(self.facts, key)))}</span>'

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def table(self, head: list[str], rows: list[list[str]], numeric_from: int = 1) -> None:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f'<td{" class=r" if k >= numeric_from else ""}>{c}</td>'
                                        for k, c in enumerate(row)) + "</tr>" for row in rows)
        self.add(f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>")


def render_card(facts: dict) -> str:
    """The page for build.json's ``facts`` (deterministic: the same facts give the same bytes)."""
    card = _Card(facts)
    try:
        for section in (_summary, _resources, _timing, _layers, _verification, _how_to_run):
            section(card)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as error:
        raise CnnhwError(f"build.json is damaged or from another version of cnnhw ({type(error).__name__}: "
                         f"{error}); build it again") from None
    title = f"{value_at(facts, 'model')} on the {value_at(facts, 'board')}"
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>cnnhw model card: "
            f"{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            f"<h1>{card.text('model')} on the {card.text('board')}</h1>\n" + "\n".join(card.parts) +
            "\n</body></html>\n")


def write_card(folder: Path, facts: dict) -> Path:
    """Write ``folder/report.html`` atomically; returns its path."""
    path = Path(folder) / CARD_FILE
    page = render_card(facts).encode()
    write_atomically(path, lambda stream: stream.write(page))
    return path


def _summary(card: _Card) -> None:
    f = card.facts
    verified = f.get("verified")
    verdict = (f"bit-exact: the Verilog's every layer equals the integer golden model on {card.num('verified.images')} "
               f"images ({card.text('verified.inputs')}), in {card.text('verified.simulator')}"
               if verified else "not verified (built with --no-verify)")
    met = "met" if f["timing_met"] else "NOT met"
    rows = [
        ("device", f"{card.text('device')} ({card.text('family')})"),
        ("verification", verdict),
        ("clock", f"{card.num('clock_mhz', 1)} MHz, timing {met} (Fmax {card.num('fmax_mhz', 1)} MHz)"),
        ("compute", f"{card.num('cycles_per_inference')} cycles per inference: {card.num('microseconds_per_inference', 1)} us, "
                    f"{card.num('inferences_per_second', 1)} inferences/s"),
        ("latency", f"{card.num('latency_cycles')} cycles from the first input element to the class"),
        ("link", f"{card.num('link_bytes_per_image')} bytes per image at {card.num('link_baud')} baud: "
                 f"{card.num('link_microseconds_per_image', 1)} us per image; the board holds "
                 f"{card.num('host.image_buffers')} image(s) at once: {card.num('images_per_second', 1)} images/s "
                 f"end to end"),
        ("work", f"{card.num('macs')} MACs per inference on {card.num('multipliers')} products per cycle "
                 f"(the DSP bound: {card.num('bound_cycles')} cycles)"),
        ("build", f"{card.num('build_seconds', 1)} s"),
    ]
    card.add("<table class=summary>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>")


def _resources(card: _Card) -> None:
    f = card.facts
    names = [name for name in RESOURCE_NAMES if name in f["resources"]]
    card.add("<h2>Resources</h2><p>Used by placement, predicted by the plan's cost model, and available on the "
             "board.</p>")
    rows = []
    for name in names:
        predicted = card.num(f"predicted.{name}") if card.has(f"predicted.{name}") else ""
        rows.append([RESOURCE_NAMES[name], card.num(f"resources.{name}.used"), predicted,
                     card.num(f"resources.{name}.total")])
    card.table(["resource", "used", "predicted", "available"], rows)
    shown = [n for n in names if f["resources"][n]["total"]]
    used = [100 * f["resources"][n]["used"] / f["resources"][n]["total"] for n in shown]
    predicted = [100 * f["predicted"].get(n, 0) / f["resources"][n]["total"] for n in shown]
    card.add(_bars([RESOURCE_NAMES[n] for n in shown], {"used": used, "predicted": predicted},
                   "% of the board", limit=100))


def _timing(card: _Card) -> None:
    card.add("<h2>Clock attempts</h2><p>Each attempt synthesised, placed and routed at one clock; the build "
             "keeps the one that met timing with the most images per second end to end, the fastest clock "
             "among equals.</p>")
    rows = []
    for k, attempt in enumerate(card.facts["attempts"]):
        steps = ", ".join(f"{html.escape(step.replace('_', ' '))} {card.num(f'attempts.{k}.seconds.{step}', 1)} s"
                          for step in attempt.get("seconds", {}))
        rows.append([card.num(f"attempts.{k}.clock_mhz", 1), card.num(f"attempts.{k}.fmax_mhz", 1),
                     "yes" if attempt["timing_met"] else "no", card.num(f"attempts.{k}.seed"), steps])
    card.table(["clock MHz", "Fmax MHz", "met", "seed", "time"], rows, numeric_from=0)


def _layers(card: _Card) -> None:
    f = card.facts
    costs = f["layer_costs"]
    quant = {layer["name"]: k for k, layer in enumerate(f.get("quantization", {}).get("layers", []))}
    plans = {layer["name"]: k for k, layer in enumerate(f["plan"]["layers"])}
    shapes = {layer["name"]: k for k, layer in enumerate(f.get("graph", {}).get("layers", []))}
    card.add("<h2>Layers</h2><p>The plan (outputs and inputs per cycle), the cost model's cycles and resources, "
             "and the quantization: formats and the error of each layer's output against the float model"
             + (f" ({card.text('quantization.errors_measured_on')})" if card.has("quantization.errors_measured_on")
                else "") + ".</p>")
    rows = []
    for k, cost in enumerate(costs):
        name = cost["name"]
        p, q, g = plans.get(name), quant.get(name), shapes.get(name)
        plan = (f"pe {card.num(f'plan.layers.{p}.pe')}, simd {card.num(f'plan.layers.{p}.simd')}, weights in "
                f"{card.text(f'plan.layers.{p}.weights')}" if p is not None else "")
        shape = "x".join(card.num(f"graph.layers.{g}.output_shape.{d}")
                         for d in range(len(f["graph"]["layers"][g]["output_shape"]))) if g is not None else ""
        macs = card.num(f"graph.layers.{g}.macs") if g is not None else ""
        formats = (f"{card.text(f'quantization.layers.{q}.input_format')} &rarr; "
                   f"{card.text(f'quantization.layers.{q}.output_format')}" if q is not None else "")
        sqnr = card.num(f"quantization.layers.{q}.sqnr_db", 1) if q is not None and card.has(
            f"quantization.layers.{q}.sqnr_db") else ""
        error = card.num(f"quantization.layers.{q}.max_error_lsb", 2) if q is not None and card.has(
            f"quantization.layers.{q}.max_error_lsb") else ""
        rows.append([card.text(f"layer_costs.{k}.name"), card.text(f"layer_costs.{k}.op"), shape, macs, plan,
                     card.num(f"layer_costs.{k}.cycles"), card.num(f"layer_costs.{k}.dsp"),
                     card.num(f"layer_costs.{k}.lut_products"), card.num(f"layer_costs.{k}.ebr"),
                     card.num(f"layer_costs.{k}.spram"), card.num(f"layer_costs.{k}.logic_cells"),
                     formats, sqnr, error])
    card.table(["layer", "op", "output", "MACs", "plan", "cycles", "DSP", "LUT products", "block RAM", "SPRAM", "logic cells",
                "formats", "SQNR dB", "max error LSB"], rows, numeric_from=3)
    names = [c["name"] for c in costs]
    card.add("<h3>Cycles per layer</h3><p>Each layer's cycles per inference; the slowest sets the pace of the "
             "pipeline.</p>")
    card.add(_bars(names, {"cycles": [c["cycles"] for c in costs]}, "cycles per inference",
                   highlight=max(range(len(costs)), key=lambda k: costs[k]["cycles"]) if costs else None))
    sqnr = [(layer["name"], layer["sqnr_db"]) for layer in f.get("quantization", {}).get("layers", [])
            if isinstance(layer.get("sqnr_db"), (int, float)) and math.isfinite(layer["sqnr_db"])]
    if sqnr:
        card.add("<h3>Quantization error per layer</h3><p>Signal to quantization noise of each layer's output, "
                 "in dB: higher is closer to the float model.</p>")
        card.add(_bars([n for n, _ in sqnr], {"SQNR": [v for _, v in sqnr]}, "SQNR, dB"))


def _verification(card: _Card) -> None:
    card.add("<h2>Verification</h2>")
    if not card.facts.get("verified"):
        card.add("<p>This build was not verified (--no-verify): nothing shows that its Verilog computes what the "
                 "golden model does.</p>")
        return
    card.add(f"<p>The generated Verilog ran {card.num('verified.images')} images in {card.text('verified.simulator')}; "
             f"every layer's every output was compared with the integer golden model with <code>==</code>, and all were "
             f"equal. Simulated: {card.num('verified.cycles_per_inference')} cycles per inference (the cost model: "
             f"{card.num('cycles_per_inference')}), {card.num('verified.latency_cycles')} cycles of latency (the cost "
             f"model: {card.num('latency_cycles')}).</p>")


def _how_to_run(card: _Card) -> None:
    folder = html.escape(str(Path(card.facts["bitstream"]).parent))
    card.add("<h2>Flash and run</h2><p>Write the bitstream"
             + (" and the weight image" if card.facts.get("weight_image") else "")
             + " to the board's flash, then send images (a .npz with <code>x</code> in the model's input units) over "
               "its serial port:</p>"
             f"<pre><code>cnnhw flash {folder}\ncnnhw run --port PORT --build {folder} images.npz</code></pre>")


def _bars(labels: list[str], series: dict[str, list[float]], unit: str, limit: float | None = None,
          highlight: int | None = None) -> str:
    """Horizontal bars (one group per label, one bar per series) as an inline SVG element."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    height = 0.9 + 0.28 * len(labels) * max(1, len(series))
    figure = Figure(figsize=(7.5, height))
    axes = figure.add_subplot()
    width = 0.8 / len(series)
    colors = ["#3b6ea8", "#c8a23c", "#7a9a4a"]
    for s, (name, values) in enumerate(series.items()):
        positions = [k + (s - (len(series) - 1) / 2) * width for k in range(len(labels))]
        bar_colors = [("#b04a3a" if k == highlight else colors[s % len(colors)]) for k in range(len(labels))]
        axes.barh(positions, values, height=width, label=name, color=bar_colors)
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()
    axes.set_xlabel(unit)
    if limit is not None:
        axes.set_xlim(0, limit)
        axes.axvline(limit, color="#888888", linewidth=0.8)
    if len(series) > 1:
        axes.legend(loc="lower right", fontsize="small")
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    buffer = io.StringIO()
    # A fixed salt for the SVG's element ids (a random one by default): the page is deterministic.
    with rc_context({"svg.hashsalt": "cnnhw", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    if "<metadata>" in svg:  # matplotlib's RDF block names its vocabularies by URL: nothing a page needs
        svg = svg[:svg.index("<metadata>")] + svg[svg.index("</metadata>") + len("</metadata>"):]
    return "<figure>" + svg + "</figure>"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
td.r { text-align: right; font-variant-numeric: tabular-nums; }
table.summary th { width: 8rem; color: #555; font-weight: normal; }
figure { margin: 0.5rem 0; } figure svg { max-width: 100%; height: auto; }
pre { background: #f4f4f4; padding: 0.6rem; }
"""
