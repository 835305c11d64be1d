"""The fill model, written once: the order of events in a bar, sizing, lots, fees per side, stops, minimums.

``kernel`` is the compiled arithmetic; ``rules`` the user's and the market's rules; ``run`` drives the kernel
over history for a backtest. The sweep kernel and the live tick call the kernel's step functions directly.
"""
