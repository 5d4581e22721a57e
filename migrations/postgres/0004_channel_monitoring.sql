-- Channel administration and monitoring (/admin/channels, /admin, /metrics):
-- * last_error / last_error_at: the last failure seen on a channel (a failed test or an automatic
--   disable), shown next to it;
-- * used_amount: the spend routed through the channel (nano-units), kept up to date in the same
--   transaction that writes the request logs, so listing channels never sums the logs;
-- * an index to read the figures of one channel over a time range.
ALTER TABLE channels ADD COLUMN last_error TEXT;
ALTER TABLE channels ADD COLUMN last_error_at BIGINT;
ALTER TABLE channels ADD COLUMN used_amount BIGINT NOT NULL DEFAULT 0;
UPDATE channels SET used_amount = (SELECT COALESCE(SUM(cost), 0) FROM request_logs WHERE request_logs.channel_id = channels.id);
CREATE INDEX request_logs_channel_created_idx ON request_logs (channel_id, created_at);
