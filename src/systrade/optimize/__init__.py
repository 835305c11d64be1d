"""Parameter search over history: grids, sweeps in bounded memory (local workers or Dask), walk-forward
analysis and the statistics of luck (deflated Sharpe, PBO). Every combination trades through ``systrade.sim``."""
