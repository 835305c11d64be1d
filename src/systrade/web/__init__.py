"""``systrade web``: a dashboard and JSON API beside the paper daemon, reading its ledger read-only."""
