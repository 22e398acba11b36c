"""The one place that touches highspy's private core class (``highspy._core._Highs``).

The planner uses the core class rather than the public ``Highs`` wrapper: the wrapper installs a Python
logging callback while it is constructed, before output can be switched off, and that first log line
prints HiGHS's banner on the process's stdout (in `vpp up`, over the live display). The core class has
every method the planner calls and logs nothing once ``output_flag`` is off.

A private name can move in any release, so it is imported here only, and
tests/unit/domain/test_highs_solver.py checks that the installed highspy still has it, with the methods
the planner calls, and that the version lies inside the range pyproject.toml admits.
"""

from __future__ import annotations

from highspy._core import _Highs

__all__ = ["PLANNER_METHODS", "QuietHighs", "new_quiet_solver"]

QuietHighs = _Highs

# Every method of the core class that vpp/domain/planning/lp.py calls.
PLANNER_METHODS = (
    "setOptionValue",
    "passModel",
    "run",
    "getModelStatus",
    "getSolution",
    "getInfo",
    "modelStatusToString",
)


def new_quiet_solver() -> _Highs:
    """A HiGHS instance for one thread: silent, simplex without presolve, single-threaded.

    Presolve is off because the planner's models are small and re-solved with the same layout; one
    thread because the scheduler already plans sites in parallel.
    """
    solver = _Highs()
    for name, value in (("output_flag", False), ("presolve", "off"), ("solver", "simplex"), ("threads", 1)):
        solver.setOptionValue(name, value)
    return solver
