-- Read models of the catalog and categories projections. No foreign keys, triggers or sequences:
-- a rebuild copies these tables with LIKE ... INCLUDING ALL and swaps the schema in.

-- catalog: one row per product for GET /products and GET /products/{id}, plus what that one read
-- joins in (category names, stock levels, rating totals), all fed from the log.
CREATE SCHEMA catalog;

CREATE TABLE catalog.products (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    slug        text        NOT NULL,
    description text        NOT NULL,
    price_minor bigint      NOT NULL,
    currency    text        NOT NULL,
    category_id uuid        NOT NULL,
    image_url   text,
    is_active   boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    search      tsvector    GENERATED ALWAYS AS (
        to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(description, ''))
    ) STORED
);
CREATE INDEX products_search_idx ON catalog.products USING gin (search);
CREATE INDEX products_newest_idx ON catalog.products (created_at DESC, id) WHERE is_active;
CREATE INDEX products_price_idx ON catalog.products (price_minor, id) WHERE is_active;
CREATE INDEX products_category_idx ON catalog.products (category_id) WHERE is_active;

-- Category names, so a product's category_name needs no other projection. Deleted categories
-- keep their last name (only inactive products can still point at them).
CREATE TABLE catalog.categories (
    id   uuid PRIMARY KEY,
    name text NOT NULL
);

-- Stock levels as the latest Inventory event states them; `version` is that event's sequence,
-- so an older event delivered again never moves the levels back.
CREATE TABLE catalog.stock (
    product_id uuid   PRIMARY KEY,
    available  bigint NOT NULL,
    reserved   bigint NOT NULL,
    version    bigint NOT NULL
);

-- Rating totals per product (integers: the average is computed when read, never stored).
CREATE TABLE catalog.ratings (
    product_id   uuid   PRIMARY KEY,
    rating_sum   bigint NOT NULL,
    rating_count bigint NOT NULL
);

-- Which reviews are counted in catalog.ratings, so a submission or deletion moves the totals
-- exactly once.
CREATE TABLE catalog.rated_reviews (
    review_id  uuid     PRIMARY KEY,
    product_id uuid     NOT NULL,
    rating     smallint NOT NULL,
    is_live    boolean  NOT NULL
);

-- categories: GET /categories and GET /categories/{id}, with the count of active products.
CREATE SCHEMA categories;

CREATE TABLE categories.categories (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    slug       text        NOT NULL,
    is_deleted boolean     NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX categories_name_idx ON categories.categories (lower(name), id) WHERE NOT is_deleted;

-- Each product's category and active flag; product counts are counted from it when read, which
-- keeps every apply an idempotent row write and independent of event order across aggregates.
CREATE TABLE categories.products (
    product_id  uuid    PRIMARY KEY,
    category_id uuid    NOT NULL,
    is_active   boolean NOT NULL
);
CREATE INDEX category_products_idx ON categories.products (category_id) WHERE is_active;
