-- Plain PostgreSQL: time indexes for "the latest rows of a timeframe".
CREATE INDEX IF NOT EXISTS analytics_spread_tf_ts ON analytics_spread (tf, ts DESC);
CREATE INDEX IF NOT EXISTS analytics_zscore_tf_ts ON analytics_zscore (tf, ts DESC);
CREATE INDEX IF NOT EXISTS analytics_stats_tf_ts ON analytics_stats (tf, ts DESC);
CREATE INDEX IF NOT EXISTS pair_scan_tf_ts ON pair_scan (tf, ts DESC);
