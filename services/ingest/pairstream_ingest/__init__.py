"""The ingest service: Binance trades (live, replayed or synthetic) into the ``ticks`` topic."""
