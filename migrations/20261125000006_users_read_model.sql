-- Read model of the users projection. Password hashes never leave the write side.
CREATE SCHEMA users;

CREATE TABLE users.users (
    id          uuid        PRIMARY KEY,
    email       text        NOT NULL,
    name        text        NOT NULL,
    phone       text,
    roles       text[]      NOT NULL,
    is_active   boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX users_created_idx ON users.users (created_at DESC, id);
CREATE INDEX users_email_idx ON users.users (lower(email));
