"""Which implementation of the hot path is in use, and the pure-Python twin of it.

sim/replica.py and sim/router.py are compiled by mypyc when the package is installed (see
setup.py). The compiled modules shadow the sources, so a stale build would hide an edit:
`check_fresh` warns when a source is newer than its compiled module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

HOT_MODULES = ("replica", "router", "stepmodel")


def is_compiled(name: str = "replica") -> bool:
    module = importlib.import_module(f"llmplan.sim.{name}")
    return not str(module.__file__).endswith(".py")


def check_fresh() -> None:
    for name in HOT_MODULES:
        module = importlib.import_module(f"llmplan.sim.{name}")
        built = Path(str(module.__file__))
        source = built.with_name(f"{name}.py")
        if built.suffix != ".py" and source.exists() and \
                source.stat().st_mtime > built.stat().st_mtime:
            warnings.warn(f"{built.name} is older than {source}: run `pip install -e .` to "
                          f"rebuild the compiled simulator", stacklevel=2)


def pure_python(name: str = "replica") -> ModuleType:
    """The interpreted module from source, whatever is installed (for twins and benchmarks)."""
    alias = f"llmplan.sim._pure_{name}"
    if alias in sys.modules:
        return sys.modules[alias]
    source = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(alias, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module
