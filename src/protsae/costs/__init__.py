"""``protsae plan``: what a config will cost before it runs.

:mod:`.types` holds the shared types and unit formulas, :mod:`.plan` builds the plan
(:func:`~protsae.costs.plan.build_plan`), :mod:`.jobs` counts jobs per rule, :mod:`.memory`
estimates each job's peak memory, :mod:`.downstream` adds the probe, steering and report stages,
and :mod:`.report` prints the table.
"""
