-- The order fulfilment process manager's own state, and durable deadlines.
CREATE SCHEMA IF NOT EXISTS process;

-- One row per order the saga follows. Written in the saga consumer's transaction (guarantee 4).
CREATE TABLE process.order_fulfilment (
    order_id    uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL,
    -- [{"product_id": ..., "quantity": ...}] of the placed order.
    lines       jsonb       NOT NULL,
    -- Products whose stock is reserved for this order.
    reserved    uuid[]      NOT NULL DEFAULT '{}',
    rejected    boolean     NOT NULL DEFAULT false,
    cancelled   boolean     NOT NULL DEFAULT false,
    confirmed   boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Deadlines survive restarts: a due, unfired, uncancelled row fires once (FOR UPDATE SKIP LOCKED).
CREATE TABLE process.deadlines (
    kind            text        NOT NULL,
    aggregate_id    uuid        NOT NULL,
    due_at          timestamptz NOT NULL,
    correlation_id  text        NOT NULL,
    causation_id    text        NOT NULL,
    fired_at        timestamptz,
    cancelled_at    timestamptz,
    PRIMARY KEY (kind, aggregate_id)
);
CREATE INDEX deadlines_due_idx ON process.deadlines (due_at)
    WHERE fired_at IS NULL AND cancelled_at IS NULL;
