-- Checkpoint anchors (pairstream.checkpoints): the last input record a checkpoint
-- covers, by offset and a blake2b-16 fingerprint of its key, value and timestamp.
-- A checkpoint is used only when that record is still in its log; else (a new
-- broker, a recreated topic, no anchor: written before this migration) it is
-- discarded with a warning and the consumer starts from the earliest offset.
ALTER TABLE resampler_checkpoints
    ADD COLUMN IF NOT EXISTS anchor_offset      bigint CHECK (anchor_offset >= 0),
    ADD COLUMN IF NOT EXISTS anchor_fingerprint bytea;

-- An analytics checkpoint is anchored to the analytics.bars record that last advanced it.
ALTER TABLE analytics_checkpoints
    ADD COLUMN IF NOT EXISTS anchor_topic       text,
    ADD COLUMN IF NOT EXISTS anchor_partition   integer CHECK (anchor_partition >= 0),
    ADD COLUMN IF NOT EXISTS anchor_offset      bigint CHECK (anchor_offset >= 0),
    ADD COLUMN IF NOT EXISTS anchor_fingerprint bytea;
