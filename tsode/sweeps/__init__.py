"""Sweeps: grids of ODE integrations, fixed points or SGD ensembles on any executor.

``tsode.sweep(spec, executor=None, output=None)`` runs the product grid of a spec
(:mod:`tsode.sweeps.spec`) with :func:`tsode.sweeps.tasks.run_task` on a local process pool, any
``concurrent.futures.Executor`` or Dask, stores finished tasks as they arrive
(:mod:`tsode.sweeps.store`) and returns an ``xarray.Dataset``. xarray and dask are imported
only when a sweep runs, never by ``import tsode``.
"""

from .run import sweep
from .spec import Spec, SpecError, Task, load_spec

__all__ = ["sweep", "load_spec", "Spec", "Task", "SpecError"]
