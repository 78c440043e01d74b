"""pairstream analytics: per-pair hedge, spread, z-score and stats workers; the pair scan."""
