-- The event store. Columns aggregate_type .. metadata are the ones postgres-es reads and writes;
-- the rest serve the global log (guarantee 2) and the relay (guarantee 3).
CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    -- Order of insertion, not of commit: never use it alone as a cursor.
    global_position bigint      GENERATED ALWAYS AS IDENTITY,
    -- The writing transaction: readers only take rows below the oldest running transaction.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- Optimistic concurrency: two writers of one version collide here (guarantee 1).
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position_idx ON events (global_position);
CREATE UNIQUE INDEX events_event_id_idx ON events (event_id);
-- The log cursor: (transaction_id, global_position).
CREATE INDEX events_log_order_idx ON events (transaction_id, global_position);
CREATE INDEX events_correlation_idx ON events ((metadata ->> 'correlation_id'));
CREATE INDEX events_recorded_at_idx ON events (recorded_at);
CREATE INDEX events_type_idx ON events (event_type);

-- Guarantee 8: history is immutable.
CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the events table is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- The relay's cursor, one row per namespace.
CREATE TABLE relay_cursors (
    name            text        PRIMARY KEY,
    transaction_id  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    published       bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Durable consumers (projections and process managers): cursor and health, one row each.
CREATE TABLE consumer_checkpoints (
    name            text        PRIMARY KEY,
    transaction_id  bigint      NOT NULL DEFAULT 0,
    global_position bigint      NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'CATCHING_UP'
                    CHECK (status IN ('CATCHING_UP', 'LIVE', 'REBUILDING', 'FAILED')),
    last_error      text,
    failed_transaction_id  bigint,
    failed_position bigint,
    failed_event_id uuid,
    -- Set by an operator (`commerce projections retry|skip`), read by the halted consumer.
    requested_action text CHECK (requested_action IN ('RETRY', 'SKIP')),
    applied         bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Every skipped event stays on record.
CREATE TABLE consumer_skips (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer        text        NOT NULL,
    transaction_id  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    event_id        uuid,
    error           text,
    skipped_at      timestamptz NOT NULL DEFAULT now()
);
