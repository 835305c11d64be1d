"""In-process fakes of external services, so tests never touch the network."""

from .binance import FakeBinance, FaultPlan, RecordedRequest

__all__ = ["FakeBinance", "FaultPlan", "RecordedRequest"]
