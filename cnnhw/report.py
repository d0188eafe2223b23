"""Human-readable reports (tables on the terminal) and their JSON twins."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .ir import Graph


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
            }
            for layer in graph.layers
        ],
        "params": graph.params,
        "macs": graph.macs,
    }


def graph_table(graph: Graph) -> Table:
    table = Table(title=f"{graph.name}  ({graph.source}, input {shape_text(graph.input_shape)})")
    for column, justify in (("#", "right"), ("layer", "left"), ("op", "left"), ("attributes", "left"),
                            ("output", "right"), ("params", "right"), ("MACs", "right")):
        table.add_column(column, justify=justify)
    for index, layer in enumerate(graph.layers):
        table.add_row(str(index), layer.op.name, layer.op.label, layer.op.describe(), shape_text(layer.out_shape),
                      f"{layer.op.params:,}", f"{layer.macs:,}")
    table.add_section()
    table.add_row("", "total", "", "", "", f"{graph.params:,}", f"{graph.macs:,}")
    return table


def console() -> Console:
    """The stdout console (no colours when not a terminal, so logs and tests stay plain)."""
    return Console(highlight=False, width=120)
