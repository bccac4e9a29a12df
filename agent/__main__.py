"""Entry point for `python -m agent`."""

import os
import sys

from agent import exiting
from agent.cli import main

# A query's databases are left for the exit below rather than closed (agent/exiting.py).
exiting.leave_to_exit()
code = main()
# Leave without the interpreter's teardown, as mypy does (`mypy.util.hard_exit`): freeing
# every module's objects, DuckDB's among them, took 20-30 ms of each `query` process, a
# tenth of a small ops query (docs/bench-agent.md). Nothing is left to it but memory: every
# file is closed by now, a query's in-memory databases hold no file of their own, and their
# threads are idle. Output is flushed first; if that fails (a closed pipe), the interpreter's
# own exit reports it, as it would anyway.
try:
    sys.stdout.flush()
    sys.stderr.flush()
except OSError:
    raise SystemExit(code) from None
os._exit(code)
