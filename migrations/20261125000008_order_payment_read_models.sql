-- Read models of the orders and payments projections. Amounts are minor units plus a currency.
-- `version` is the aggregate sequence of the last event applied to a row: an update only applies
-- to rows at an older version, so a stale or repeated event never moves a row backwards.
CREATE SCHEMA orders;

CREATE TABLE orders.orders (
    id                  uuid        PRIMARY KEY,
    user_id             uuid        NOT NULL,
    status              text        NOT NULL,
    stock_status        text        NOT NULL,
    payment_status      text        NOT NULL,
    cancellation_reason text,
    total_amount        bigint      NOT NULL,
    currency            text        NOT NULL,
    shipping_address    jsonb       NOT NULL,
    payment_method      text        NOT NULL,
    -- The payment that paid the order: only its refunds change `payment_status`.
    paid_by             uuid,
    version             bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX orders_created_idx ON orders.orders (created_at DESC, id);
CREATE INDEX orders_user_created_idx ON orders.orders (user_id, created_at DESC, id);

-- The priced lines of an order (one per product: `OrderPlaced` merges lines of one product).
CREATE TABLE orders.order_items (
    order_id     uuid    NOT NULL,
    line_no      integer NOT NULL,
    product_id   uuid    NOT NULL,
    product_name text    NOT NULL,
    quantity     bigint  NOT NULL,
    price        bigint  NOT NULL,
    subtotal     bigint  NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_items_product_idx ON orders.order_items (product_id, order_id);

CREATE SCHEMA payments;

CREATE TABLE payments.payments (
    id                     uuid        PRIMARY KEY,
    order_id               uuid        NOT NULL,
    user_id                uuid        NOT NULL,
    amount                 bigint      NOT NULL,
    currency               text        NOT NULL,
    method                 text        NOT NULL,
    status                 text        NOT NULL,
    failure_reason         text,
    gateway_transaction_id text,
    refunded_amount        bigint      NOT NULL,
    version                bigint      NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);
CREATE INDEX payments_created_idx ON payments.payments (created_at DESC, id);
CREATE INDEX payments_user_created_idx ON payments.payments (user_id, created_at DESC, id);
CREATE INDEX payments_order_idx ON payments.payments (order_id);

-- Saved payment methods. A removed method keeps its row (`removed_at` set) so that a repeated
-- `PaymentMethodAdded` cannot bring it back; queries show only `removed_at IS NULL`.
CREATE TABLE payments.payment_methods (
    id                uuid        PRIMARY KEY,
    user_id           uuid        NOT NULL,
    method_type       text        NOT NULL,
    gateway_method_id text        NOT NULL,
    is_default        boolean     NOT NULL,
    removed_at        timestamptz,
    -- Sequence of the owner's `PaymentMethod` stream last applied to this row.
    version           bigint      NOT NULL,
    created_at        timestamptz NOT NULL
);
CREATE INDEX payment_methods_user_idx ON payments.payment_methods (user_id) WHERE removed_at IS NULL;
