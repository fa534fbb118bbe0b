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

from . import cell_hints, cell_main, cell_template, cell_tracebacks

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
sys.modules[PACKAGE + "." + ENTRY].main()
"""


def runner_source(entry: str = "cell_main") -> str:
    """The ``-c`` program: the modules' sources, then the lines that load them and call ``entry``.main."""
    modules = (*MODULES, cell_template) if entry == "cell_template" else MODULES
    sources = [(module.__name__.rpartition(".")[2], Path(str(module.__file__)).read_text(encoding="utf-8")) for module in modules]
    return f"PACKAGE = {PACKAGE!r}\nENTRY = {entry!r}\nSOURCES = {sources!r}\n{_LOADER}"


#: One cell in a fresh interpreter (``RUNNER HINT_FD VARIABLE...``).
RUNNER = runner_source()
#: The template cells are forked from (``TEMPLATE CONTROL_FD sweep|keep MODULES VARIABLE...``; cell_template.py).
TEMPLATE = runner_source("cell_template")
