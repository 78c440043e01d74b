"""pairstream: real-time pairs-trading analytics on Binance trades.

The shared library of every service: topic messages and codecs, topic names,
settings, Kafka and database helpers, embedded infrastructure and the CLI.
"""

__version__ = "0.1.0"
