"""The pure, incremental pairs-analytics core (no I/O, no clock, no Kafka).

* :mod:`.rolling` — window sums that stay exact on prices near 60,000;
* :mod:`.hedge` — rolling OLS, rolling Huber (RLM conventions), Kalman ``[β, α]``;
* :mod:`.stationarity` — ADF (fixed lag), Engle–Granger, half-life, HAC OLS;
* :mod:`.pair` — every metric of one pair, one joined bar at a time;
* :mod:`.join` — joining two legs on bar start (the missing-leg rule);
* :mod:`.batch` — whole-series forms and :func:`~.batch.analyze`;
* :mod:`.scan` — the correlation/cointegration scan across symbols.
"""
