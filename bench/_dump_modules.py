"""Run ``python -m MODULE ARGS...``; at exit, write the names in sys.modules to $DUMP_MODULES."""

import atexit
import os
import runpy
import sys


def _dump() -> None:
    with open(os.environ["DUMP_MODULES"], "w") as out:
        out.write("\n".join(sorted(sys.modules)))


atexit.register(_dump)
module, *rest = sys.argv[1:]
sys.argv = [module, *rest]
runpy.run_module(module, run_name="__main__", alter_sys=True)
