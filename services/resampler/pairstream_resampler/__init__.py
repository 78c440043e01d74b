"""The resampler service: ``ticks`` into OHLCV bars on ``bars.<tf>`` and in the ``bars`` table."""
