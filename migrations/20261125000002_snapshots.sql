-- Snapshots of aggregates, our own (not postgres-es's `snapshots`, whose aggregate store applies
-- events twice in 0.5.0). One row per aggregate: the state folded from its events 1..=version.
-- Events are the truth: a snapshot is only a shortcut for loading, may be deleted at any time (the
-- next load replays the whole stream) and never moves backwards (see EventStore::save_snapshot).
CREATE TABLE aggregate_snapshots (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    -- The last event folded into `state`.
    version         bigint      NOT NULL CHECK (version >= 1),
    state           jsonb       NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
