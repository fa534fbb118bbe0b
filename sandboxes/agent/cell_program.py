"""The program a cell's process is started with (``python -c RUNNER HINT_FD VARIABLE...``).

The project is not importable inside a cell (the sandbox sees the interpreter, not
the checkout), so the modules that shape a cell's errors travel as source: the
program makes them a package of their own in ``sys.modules`` and calls
cell_main.main, which reads the code from stdin, runs it as ``__main__`` of
``<cell>``, prints tracebacks the learner's way and writes hints to the pipe.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from . import cell_hints, cell_main, cell_tracebacks

#: The name of that package inside the cell; its modules import one another relatively.
PACKAGE = "cellrun"
#: Each module imports only modules before it.
MODULES: tuple[ModuleType, ...] = (cell_tracebacks, cell_hints, cell_main)

_LOADER = """
import sys, types
sys.modules[PACKAGE] = types.ModuleType(PACKAGE)
sys.modules[PACKAGE].__path__ = []
for _name, _source in SOURCES:
    _module = types.ModuleType(PACKAGE + "." + _name)
    _module.__package__ = PACKAGE
    sys.modules[_module.__name__] = _module
    exec(compile(_source, "<" + _name + ">", "exec"), _module.__dict__)
sys.modules[PACKAGE + ".cell_main"].main()
"""


def runner_source() -> str:
    """The ``-c`` program: the modules' sources, then the lines that load them and run the cell."""
    sources = [(module.__name__.rpartition(".")[2], Path(str(module.__file__)).read_text(encoding="utf-8")) for module in MODULES]
    return f"PACKAGE = {PACKAGE!r}\nSOURCES = {sources!r}\n{_LOADER}"


RUNNER = runner_source()
