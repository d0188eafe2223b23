"""One exception family for everything a user can get wrong.

The CLI catches :class:`CnnhwError` and prints ``str(error)`` as one line, then exits
non-zero. Messages follow one pattern: *what* is wrong, *where* (file, node, layer), and
*what to do*. Anything that is not a ``CnnhwError`` is a bug in cnnhw and keeps its
traceback.
"""


class CnnhwError(Exception):
    """Base of every user-facing error; ``str()`` is the single line the CLI shows. ``details``
    (optional, a rich renderable such as a budget table) is printed on stderr before that line."""

    exit_code = 2
    details = None

    def __init__(self, message: str, details=None):
        super().__init__(message)
        self.details = details


class ModelError(CnnhwError):
    """The model file is missing, empty, corrupt, or inconsistent."""


class UnsupportedModelError(ModelError):
    """The model is valid, but uses an op or feature that cnnhw does not implement."""


class DataError(CnnhwError):
    """An input/calibration DATA file is missing, corrupt, or does not fit the model."""


class BuildError(CnnhwError):
    """A synthesis, place-and-route or packing tool failed, is missing, or the design misses timing."""


class DoesNotFitError(BuildError):
    """The design needs more of some resource than the board has (``details`` holds the table;
    ``over`` names the budget keys that are over, e.g. ``["logic_cells"]``; ``needs`` what was
    needed of each resource)."""

    def __init__(self, message: str, details=None, over: list[str] | None = None, needs: dict | None = None):
        super().__init__(message, details)
        self.over = list(over or [])
        self.needs = dict(needs or {})


def one_line(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``), so that a message
    stays one line and a name from a model cannot drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
