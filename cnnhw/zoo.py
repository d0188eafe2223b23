"""``cnnhw zoo``: build and verify a list of models on a list of boards, and tabulate the results.

The zoo file (TOML) lists models; each is built for each of its boards, as ``cnnhw build`` would
build it::

    [[model]]
    name = "LeNet-5"                          # the results' name (unique)
    file = "lenet.onnx"                       # paths are relative to the zoo file
    boards = ["icebreaker", "ulx3s-12f"]
    eval = "lenet.test.npz"                   # optional: labelled images, float and integer accuracy
    options = { calib = "lenet.calib.npz" }   # optional: cnnhw build's options, for every board
    board_options = { icebreaker = { clock = 24 } }   # optional: more options for one board

``options`` are ``cnnhw build``'s long options without the dashes (a flag: ``true``; several
values: a list); ``board_options`` adds (or overrides) options for a board. The model, board,
output, ``--json`` and cluster options belong to the zoo. Every entry is checked before anything is
built (a bad file, board, option or clock: one line).

Each model x board is one :func:`build_entry` task on a Dask cluster (``cnnhw/cluster.py``; with
``sequential``, in this process one after another): the build folder ``DIR/<name>-<board>/`` is
written atomically by the build itself, its log goes to ``DIR/logs/<name>-<board>.log``, and the
task returns the row of the results. A task whose worker is killed runs again on another worker;
the build folders it had begun (hidden staging folders) are removed when the zoo ends, so a build
folder is whole or absent. A build that fails or does not fit is a row saying so, not the end of the
zoo. When the zoo has fewer builds than workers, each build's timing search uses the idle workers.

Results in DIR (see :func:`write_results`): ``results.json`` (the rows), ``results.md`` (a Markdown
table with the command that made it) and ``index.html`` (the table, linking each build's model
card ``report.html``). A row's ``seconds`` are the only values that differ between runs.
"""

from __future__ import annotations

import html
import re
import logging
import shutil
import uuid
from contextlib import contextmanager, nullcontext, redirect_stdout
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import CnnhwError, DoesNotFitError, one_line
from .outputs import MARKER, folder_kind, write_atomically, write_json

log = logging.getLogger("cnnhw")

#: Where each kind of result goes in the zoo folder.
RESULTS_JSON, RESULTS_MARKDOWN, INDEX_HTML, LOGS = "results.json", "results.md", "index.html", "logs"
#: A zoo file lists models and options; a larger file is not one.
MAX_ZOO_BYTES = 1 << 20
#: Options of ``cnnhw build`` whose value is a path (relative to the zoo file).
PATH_OPTIONS = ("calib", "inputs", "plan")
#: Options the zoo sets itself.
ZOO_OWNED = ("model", "board", "output", "json", "workers", "scheduler", "quiet")
#: A row's status.
VERIFIED, DOES_NOT_FIT, FAILED = "verified", "does not fit", "failed"


@dataclass(frozen=True)
class ZooEntry:
    """One model on one board: the ``cnnhw build`` command line that builds it."""

    name: str
    model: Path
    board: str
    options: tuple[str, ...]  # cnnhw build's options, paths absolute
    eval: Path | None = None

    @property
    def key(self) -> str:
        """The build folder's and the log's name."""
        from .flow.verilog import identifier

        return f"{identifier(self.name)}-{re.sub(r'[^A-Za-z0-9_.-]', '_', Path(self.board).stem)}"

    def build_argv(self, out: Path) -> list[str]:
        return ["build", "--model", str(self.model), "--board", self.board, "-o", str(out / self.key), *self.options]


# ---------------------------------------------------------------------- the zoo file
def read_zoo(path, parse_build: Callable[[list[str]], object]) -> list[ZooEntry]:
    """The entries of the zoo file ``path``, every one checked (CnnhwError naming the model and key):
    ``parse_build(argv)`` parses a ``cnnhw build`` command line (the CLI's parser) into its options."""
    from .inputs import read_text

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    text = read_text(path, "zoo file", "TOML", limit=MAX_ZOO_BYTES)
    base = path.resolve().parent  # absolute: a worker of another machine runs in another folder
    try:
        zoo = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CnnhwError(f"zoo file {path} is not valid TOML ({error})") from None
    unknown = sorted(set(zoo) - {"model"})
    models = zoo.get("model")
    if unknown or not isinstance(models, list) or not models:
        raise CnnhwError(f"zoo file {path}: expected [[model]] tables only"
                         + (f" (found {', '.join(unknown)})" if unknown else " (none found)")
                         + "; see cnnhw zoo --help for the format")
    entries, seen = [], set()
    for index, model in enumerate(models):
        name = model.get("name") if isinstance(model, dict) else None
        where = f"zoo file {path}, model {index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
        for entry in _entries(model, base, where, parse_build):
            if entry.key in seen:
                raise CnnhwError(f"{where}: {entry.name!r} on {entry.board} is listed twice; give each model its "
                                 f"own name")
            seen.add(entry.key)
            entries.append(entry)
    return entries


def _entries(model, base: Path, where: str, parse_build) -> list[ZooEntry]:
    if not isinstance(model, dict):
        raise CnnhwError(f"{where}: a [[model]] must be a table")
    unknown = sorted(set(model) - {"name", "file", "boards", "eval", "options", "board_options"})
    if unknown:
        raise CnnhwError(f"{where}: unknown key {unknown[0]!r}; a model has name, file, boards, eval, options and "
                         f"board_options")
    for key, kind in (("name", str), ("file", str), ("boards", list)):
        if not isinstance(model.get(key), kind) or not model[key]:
            raise CnnhwError(f"{where}: {key} must be a non-empty {'list of board names' if kind is list else 'string'}")
    if not all(isinstance(board, str) and board for board in model["boards"]):
        raise CnnhwError(f"{where}: boards must be board names (cnnhw boards) or profile files")
    if "eval" in model and not isinstance(model["eval"], str):
        raise CnnhwError(f"{where}: eval must be a path to a DATA file")
    per_board = model.get("board_options", {})
    if not isinstance(per_board, dict) or set(per_board) - set(model["boards"]):
        extra = sorted(set(per_board) - set(model["boards"])) if isinstance(per_board, dict) else []
        raise CnnhwError(f"{where}: board_options must be a table of the model's boards"
                         + (f" ({extra[0]!r} is not one of them)" if extra else ""))
    entries = []
    for board in model["boards"]:
        options = {**_table(model.get("options", {}), "options", where),
                   **_table(per_board.get(board, {}), f"board_options.{board}", where)}
        entry = ZooEntry(model["name"], base / model["file"], str(base / board) if board.endswith(".json") else board,
                         _options(options, base, where), base / model["eval"] if "eval" in model else None)
        _check_entry(entry, f"{where} on {board}", parse_build)
        entries.append(entry)
    return entries


def _table(options, key: str, where: str) -> dict:
    if not isinstance(options, dict):
        raise CnnhwError(f"{where}: {key} must be a table of cnnhw build options (e.g. {{ clock = 24 }})")
    return options


def _options(options: dict, base: Path, where: str) -> tuple[str, ...]:
    argv = []
    for key, value in options.items():
        if key in ZOO_OWNED:
            raise CnnhwError(f"{where}: options.{key}: the zoo sets --{key} itself; remove it")
        if key == "no-verify":
            raise CnnhwError(f"{where}: options.no-verify: a zoo verifies every build; remove it")
        if value is True:
            argv.append(f"--{key}")
            continue
        if value is False:
            continue
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise CnnhwError(f"{where}: options.{key} must be a string, a number, true or a list of them")
        argv += [f"--{key}", *(str(base / v) if key in PATH_OPTIONS else str(v) for v in values)]
    return tuple(argv)


def _check_entry(entry: ZooEntry, where: str, parse_build) -> None:
    """Parse the entry's ``cnnhw build`` command line and check its files, before any build."""
    from .boards import load_board

    for role, file in (("file", entry.model), ("eval", entry.eval)):
        if file is not None and not file.is_file():
            raise CnnhwError(f"{where}: {role} {file} does not exist")
    try:
        args = parse_build(entry.build_argv(Path(".")))
    except CnnhwError as error:
        raise CnnhwError(f"{where}: options: {error}") from None
    for option in PATH_OPTIONS:
        value = getattr(args, option, None)
        if value is not None and not Path(value).is_file():
            raise CnnhwError(f"{where}: options.{option}: {value} does not exist")
    try:
        board = load_board(entry.board)
    except CnnhwError as error:
        raise CnnhwError(f"{where}: boards: {error}") from None
    if args.clock is not None:
        try:
            board.pll_for(args.clock)
        except CnnhwError as error:
            raise CnnhwError(f"{where}: options.clock: {error}") from None


# ---------------------------------------------------------------------- one build
@contextmanager
def _log_to(path: Path):
    """cnnhw's progress lines and printed tables (a build prints its plan) into ``path`` only, for
    the duration: a zoo prints its own."""
    from .progress import lines_only

    logger = logging.getLogger("cnnhw")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    saved = logger.handlers, logger.propagate, logger.level
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    try:
        with lines_only(), redirect_stdout(handler.stream):
            yield
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
        handler.close()


#: ``build(argv, workers)``: what ``cnnhw build`` does with the command line ``argv``, on ``workers``
#: (``cnnhw/cluster.py``) for the timing search: (build.json's facts, the quantized graph).
Builder = Callable[[list[str], object], tuple[dict, object]]


def build_entry(entry: ZooEntry, out: Path, build: Builder, parallel_attempts: bool = False) -> dict:
    """Build, verify and measure ``entry`` into ``out/<key>`` with ``build`` (a task: see
    ``cnnhw/cluster.py``); its row of the results. ``parallel_attempts``: the timing search uses the
    cluster this task runs on. Only a bug raises: a build that fails is a row with ``status`` and
    ``error``."""
    from .cluster import from_worker

    row = {"model": entry.name, "model_file": entry.model.name, "board": entry.board, "folder": entry.key}
    with _log_to(out / LOGS / f"{entry.key}.log"):
        try:
            with from_worker() if parallel_attempts else nullcontext() as workers:
                facts, qgraph = build(entry.build_argv(out), workers)
            row.update(status=VERIFIED, **result_facts(facts, entry.key))
            if entry.eval is not None:
                row["accuracy"] = _accuracy(qgraph, entry.eval)
        except CnnhwError as error:
            row.update(status=DOES_NOT_FIT if isinstance(error, DoesNotFitError) else FAILED,
                       error=one_line(str(error)))
            if error.details is not None:  # the budget table, into the log
                from .report import console

                console().print(error.details)
        log.info("%s", describe(row))
    return row


def result_facts(facts: dict, key: str) -> dict:
    """A row's figures, from the build.json ``facts`` of the build in the zoo's folder ``key``."""
    bitstream = Path(facts["bitstream"]).name
    verified = facts["verified"] or {}
    return {
        "device": facts["device"],
        "bit_exact": verified.get("bit_exact", False),
        "verified_images": verified.get("images", 0),
        "clock_mhz": facts["clock_mhz"], "fmax_mhz": facts["fmax_mhz"],
        "cycles_per_inference": facts["cycles_per_inference"],
        "simulated_cycles_per_inference": verified.get("cycles_per_inference"),
        "latency_cycles": facts["latency_cycles"],
        "microseconds_per_inference": facts["microseconds_per_inference"],
        "inferences_per_second": facts["inferences_per_second"], "images_per_second": facts["images_per_second"],
        "link_baud": facts["link_baud"],
        "resources": {key: value["used"] for key, value in facts["resources"].items()},
        "available": {key: value["total"] for key, value in facts["resources"].items()},
        "predicted": facts["predicted"],
        # The output's SQNR against the float model on the calibration images (None without them).
        "output_sqnr_db": facts["quantization"]["layers"][-1].get("sqnr_db"),
        "bitstream_sha256": facts["files"][bitstream],
        "report": f"{key}/{Path(facts['report']).name}",
        "seconds": {"build": facts["build_seconds"], "verify": verified.get("seconds")},
    }


def _accuracy(qgraph, path: Path) -> dict:
    from .datafiles import load_data
    from .golden.evaluate import accuracy

    data = load_data(path, qgraph.graph, "evaluation data")
    result = accuracy(qgraph, data.x, data.y)
    return {"images": result.images, "float": result.float_accuracy, "int": result.int_accuracy,
            "agreement": result.agreement}


def describe(row: dict) -> str:
    """One line about a finished build."""
    where = f"{row['model']} on {row['board']}"
    if row["status"] != VERIFIED:
        return f"{where}: {row['status']}: {row['error']}"
    return (f"{where}: verified, {row['clock_mhz']:g} MHz, {row['cycles_per_inference']:,} cycles "
            f"({row['microseconds_per_inference']:,.0f} us), {row['images_per_second']:,.0f} images/s end to end, "
            f"built in {row['seconds']['build']:.0f} s")


# ---------------------------------------------------------------------- the zoo
def run_zoo(entries: list[ZooEntry], out: Path, build: Builder, client=None) -> list[dict]:
    """Every entry's row, in the entries' order, built with ``build``: as tasks on the Dask
    ``client``'s cluster, or in this process one after another when ``client`` is None. ``out``
    exists (a zoo folder)."""
    from .progress import counter

    rows: dict[str, dict] = {}
    with counter(f"zoo: {len(entries)} builds" + ("" if client is None else " on the cluster"), len(entries)) as done:
        if client is None:
            for entry in entries:
                rows[entry.key] = build_entry(entry, out, build)
                done(describe(rows[entry.key]))
        else:
            from distributed import as_completed
            from distributed.scheduler import KilledWorker

            from .cluster import workers_of

            parallel_attempts = len(entries) < workers_of(client).count
            # Keys of this run only: a shared cluster would hand another zoo's build of the same key back.
            run = uuid.uuid4().hex[:8]
            futures = {client.submit(build_entry, entry, out, build, parallel_attempts, key=f"zoo-{entry.key}-{run}",
                                     pure=False):
                       entry for entry in entries}
            for future in as_completed(futures):
                entry = futures[future]
                try:
                    rows[entry.key] = future.result()
                except KilledWorker as error:
                    rows[entry.key] = {"model": entry.name, "model_file": entry.model.name, "board": entry.board,
                                       "folder": entry.key, "status": FAILED,
                                       "error": f"every worker that ran this build died ({error}); see "
                                                f"{out / LOGS / entry.key}.log"}
                done(describe(rows[entry.key]))
    remove_unfinished(out)
    return [rows[entry.key] for entry in entries]


def remove_unfinished(out: Path) -> None:
    """Remove the hidden staging folders a killed build left in ``out`` (the builds are over). A
    tool the killed worker had started may still be writing into one; what it leaves is removed by
    the next zoo in ``out``."""
    for child in out.iterdir():
        if child.name.startswith(".") and child.name != MARKER and child.is_dir() and folder_kind(child) is not None:
            shutil.rmtree(child, ignore_errors=True)


# ---------------------------------------------------------------------- the results
def write_results(out: Path, rows: list[dict], command: str, workers: str) -> None:
    """``results.json``, ``results.md`` and ``index.html`` in ``out``, each written atomically."""
    write_json(out / RESULTS_JSON, {"command": command, "workers": workers, "rows": rows})
    markdown = markdown_table(rows, command, workers) + "\n"
    write_atomically(out / RESULTS_MARKDOWN, lambda stream: stream.write(markdown.encode()))
    page = index_html(rows, command, workers)
    write_atomically(out / INDEX_HTML, lambda stream: stream.write(page.encode()))


#: The table's columns: heading, and the cell of a verified row.
def _columns():
    def accuracy(row):
        a = row.get("accuracy")
        if not a or a["int"] is None:
            return "n/a"
        return f"{a['float']:.2%} / {a['int']:.2%} ({a['images']})"

    def used(key):
        def cell(row):
            if key not in row["resources"]:
                return ""
            return f"{row['resources'][key]:,} / {row['available'][key]:,}"
        return cell

    return (
        ("device", lambda r: r["device"]),
        ("bit-exact", lambda r: f"yes ({r['verified_images']} images)" if r["bit_exact"] else "NO"),
        ("clock / Fmax MHz", lambda r: f"{r['clock_mhz']:g} / {r['fmax_mhz']:.1f}"),
        ("cycles / inference", lambda r: f"{r['cycles_per_inference']:,}"),
        ("us / inference", lambda r: f"{r['microseconds_per_inference']:,.0f}"),
        ("inferences/s", lambda r: f"{r['inferences_per_second']:,.0f}"),
        ("images/s end to end", lambda r: f"{r['images_per_second']:,.0f} ({r['link_baud'] / 1e6:g} Mbaud)"),
        ("logic cells", used("logic_cells")),
        ("DSP", used("dsp")),
        ("EBR", used("ebr")),
        ("SPRAM", used("spram")),
        ("output SQNR dB", lambda r: "n/a" if r["output_sqnr_db"] is None else f"{r['output_sqnr_db']:.1f}"),
        ("float / int accuracy", accuracy),
        ("build s", lambda r: f"{r['seconds']['build']:,.0f}"),
    )


def _cells(row: dict) -> list[str]:
    if row["status"] != VERIFIED:
        return [f"{row['status']}: {row['error']}"] + [""] * (len(_columns()) - 1)
    return [cell(row) for _, cell in _columns()]


#: The columns the terminal shows (the files have them all).
TERMINAL_COLUMNS = ("bit-exact", "clock / Fmax MHz", "cycles / inference", "us / inference", "images/s end to end",
                    "logic cells", "DSP", "EBR")


def results_table(rows: list[dict], title: str):
    """The results as a rich Table, for the terminal."""
    from rich.table import Table

    table = Table(title=title)
    shown = [index for index, (heading, _) in enumerate(_columns()) if heading in TERMINAL_COLUMNS]
    for heading in ("model", "board", *(_columns()[index][0] for index in shown)):
        table.add_column(heading, justify="left" if heading in ("model", "board") else "right")
    for row in rows:
        cells = _cells(row)
        table.add_row(row["model"], row["board"],
                      *([row["status"].upper()] + [""] * (len(shown) - 1) if row["status"] != VERIFIED
                        else [cells[i] for i in shown]))
    return table


def markdown_table(rows: list[dict], command: str, workers: str) -> str:
    headings = ["model", "board", *(heading for heading, _ in _columns())]
    lines = [f"Measured with `{command}` ({workers}):", "", "| " + " | ".join(headings) + " |",
             "|" + "---|" * len(headings)]
    for row in rows:
        cells = [row["model"], row["board"], *_cells(row)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def index_html(rows: list[dict], command: str, workers: str) -> str:
    """One self-contained page: the results table, each model linked to its model card."""
    headings = ["model", "board", *(heading for heading, _ in _columns())]
    body = []
    for row in rows:
        name = html.escape(row["model"])
        link = (f'<a href="{html.escape(row["report"])}">{name}</a>' if row["status"] == VERIFIED else name)
        cells = [link, html.escape(row["board"]), *(html.escape(cell) for cell in _cells(row))]
        status = "ok" if row["status"] == VERIFIED else "bad"
        body.append(f'<tr class="{status}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cnnhw zoo</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
td:first-child, td:nth-child(2), th {{ text-align: left; }} tr.bad td {{ background: #fee; }}
code {{ background: #f4f4f4; padding: 0.1em 0.3em; }}
</style></head><body>
<h1>cnnhw zoo</h1>
<p>Measured with <code>{html.escape(command)}</code> ({html.escape(workers)}). Each model links to its model card.</p>
<table><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in headings)}</tr>
{chr(10).join(body)}
</table></body></html>
"""


def comparable(row: dict) -> dict:
    """``row`` without what differs between runs of the same zoo (its ``seconds``)."""
    return {key: value for key, value in row.items() if key != "seconds"}


def failed(rows: list[dict]) -> list[dict]:
    """The rows of builds that failed (a build that does not fit is a result, not a failure)."""
    return [row for row in rows if row["status"] == FAILED]
