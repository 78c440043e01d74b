-- TimescaleDB: the analytics tables and the scan are hypertables on the bar start.
SELECT create_hypertable('analytics_spread', 'ts', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('analytics_zscore', 'ts', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('analytics_stats', 'ts', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('pair_scan', 'ts', chunk_time_interval => INTERVAL '7 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
CREATE INDEX IF NOT EXISTS pair_scan_tf_ts ON pair_scan (tf, ts DESC);
