-- Read models of the inventory, carts and reviews projections. Each row's `version` is the
-- aggregate sequence last applied to it, so a stale or redelivered event changes nothing.

CREATE SCHEMA inventory;

-- One row per product whose stock was ever adjusted (a product with only a rejected reservation
-- has no stock, as on the write side). total = available + reserved.
CREATE TABLE inventory.levels (
    product_id  uuid        PRIMARY KEY,
    available   bigint      NOT NULL,
    reserved    bigint      NOT NULL,
    total       bigint      NOT NULL,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- One row per stock movement (keyed by its event id), ordered by the inventory's sequence.
CREATE TABLE inventory.movements (
    id              uuid        PRIMARY KEY,
    product_id      uuid        NOT NULL,
    sequence        bigint      NOT NULL,
    movement_type   text        NOT NULL,
    quantity        bigint      NOT NULL,
    available_before bigint     NOT NULL,
    available_after bigint      NOT NULL,
    reference_type  text        NOT NULL,
    reference_id    uuid,
    reason          text,
    created_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX movements_product_sequence_idx ON inventory.movements (product_id, sequence);

CREATE SCHEMA carts;

-- One row per user whose cart ever had an event.
CREATE TABLE carts.carts (
    user_id     uuid        PRIMARY KEY,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- The lines; `line_order` is the cart version that first added the line (display order).
CREATE TABLE carts.items (
    user_id         uuid        NOT NULL,
    product_id      uuid        NOT NULL,
    product_name    text        NOT NULL,
    quantity        bigint      NOT NULL,
    price_minor     bigint      NOT NULL,
    subtotal_minor  bigint      NOT NULL,
    currency        text        NOT NULL,
    line_order      bigint      NOT NULL,
    added_at        timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

CREATE SCHEMA reviews;

-- One row per review id ever submitted; a deleted review stays as a tombstone (deleted_at set,
-- comment cleared) so a redelivered submission cannot bring it back. Queries skip tombstones.
CREATE TABLE reviews.reviews (
    id                 uuid        PRIMARY KEY,
    product_id         uuid        NOT NULL,
    user_id            uuid        NOT NULL,
    rating             smallint    NOT NULL,
    comment            text        NOT NULL,
    verified_purchase  boolean     NOT NULL,
    version            bigint      NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    deleted_at         timestamptz
);
CREATE INDEX reviews_product_created_idx ON reviews.reviews (product_id, created_at DESC, id)
    WHERE deleted_at IS NULL;
CREATE INDEX reviews_user_product_idx ON reviews.reviews (user_id, product_id)
    WHERE deleted_at IS NULL;
