"""What ships inside the package, so it works from any folder: the bundled strategies, the synthetic
sample and the example strategy ``systrade init`` writes into a new project."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
STRATEGIES_DIR = HERE / "strategies"  # found by name from anywhere; a project's own strategy of that name wins
SAMPLE_FILE = HERE / "sample" / "SAMPLE_USDT-1h.parquet"  # made by systrade.data.sample.generate_sample()
EXAMPLE_STRATEGY = HERE / "my_strategy.py"  # copied to <project>/strategies/ by `systrade init`
