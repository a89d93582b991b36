-- Progress of a running rebuild, shown as REBUILDING while its heartbeat is fresh.
ALTER TABLE consumer_checkpoints
    ADD COLUMN rebuild_started_at   timestamptz,
    ADD COLUMN rebuild_heartbeat_at timestamptz,
    ADD COLUMN rebuild_applied      bigint,
    ADD COLUMN rebuild_total        bigint;
