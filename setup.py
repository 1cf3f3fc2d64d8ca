"""Build hook: compile the simulator's hot path with mypyc (same typed Python source).

llmplan/sim/replica.py and router.py run about 3x faster compiled. Set LLMPLAN_PURE_PYTHON=1
to skip compilation; without a C compiler the build falls back to pure Python by itself.
"""

import os
import sys

from setuptools import setup

# llmplan/sim is the repository's sim/ folder (a symlink): compiled as llmplan.sim.*
HOT_PATH = ["llmplan/sim/replica.py", "llmplan/sim/router.py", "llmplan/sim/stepmodel.py"]


def _extensions() -> list:
    if os.environ.get("LLMPLAN_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify

        # the build environment lacks the runtime dependencies: type-check the hot path
        # alone, without the project's mypy config and its pydantic plugin
        # group_name puts mypyc's shared runtime inside the package (llmplan/hotpath__mypyc),
        # so the wheel installs one top-level name
        return mypycify(["--config-file=", "--ignore-missing-imports", "--follow-imports=silent",
                         *HOT_PATH],
                        opt_level="3", group_name="llmplan.hotpath")
    except BaseException as exc:  # no compiler or no mypyc: the pure-Python modules work
        print(f"llmplan: not compiling the hot path ({exc}); using pure Python", file=sys.stderr)
        return []


setup(ext_modules=_extensions())
