"""Site planning for demand response: the planners, their LP, and how a plan is executed and shared.

- :mod:`.planners`: the day-ahead site planners (peak-cut, peak-shift, import floor);
- :mod:`.model`: their inputs, outputs and input checks; :mod:`.lp`: the linear programme they share;
- :mod:`.floor`: the import-floor feasibility checks; :mod:`.reactive`: the reactive reference controller;
- :mod:`.highs_solver`: the one place that touches highspy's private core class (guarded by a test);
- :mod:`.execution`: re-planning, receding horizon and the site EMS that executes a plan;
- :mod:`.stochastic`: the peak programme's stochastic limits (battery-only); :mod:`.limit_replan`: its LP
  limits for sites with EVs;
- :mod:`.deliverable`: the reduction a site can deliver in a window, and its plan to a window limit.

The package re-exports the planners' public API, so ``from vpp.domain.planning import plan_peak_cut`` works.
"""

from vpp.domain.planning.model import EvDemand, InfeasiblePlan, Plan, SiteFlex
from vpp.domain.planning.planners import PeakShiftWeights, plan_import_floor, plan_peak_cut, plan_peak_shift
from vpp.domain.planning.reactive import threshold_controller

__all__ = [
    "EvDemand",
    "InfeasiblePlan",
    "PeakShiftWeights",
    "Plan",
    "SiteFlex",
    "plan_import_floor",
    "plan_peak_cut",
    "plan_peak_shift",
    "threshold_controller",
]
