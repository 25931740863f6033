-- Live sync and the connection's life: Graph subscriptions (the clientState
-- itself stays in Vault; only its SHA-256 is kept, to check notifications),
-- and the durable record of events for the app.

CREATE TABLE subscriptions (
    id                text        PRIMARY KEY,
    connection_id     text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    client_state_hash bytea       NOT NULL,
    resource          text        NOT NULL,
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX subscriptions_connection ON subscriptions (connection_id);

CREATE TABLE events (
    seq           bigserial   PRIMARY KEY,
    id            text        NOT NULL UNIQUE, -- stable, for the app to dedupe
    connection_id text        NOT NULL,
    type          text        NOT NULL,
    data          jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_connection ON events (connection_id, seq);

ALTER TABLE connections ADD COLUMN detached_at timestamptz;

---- create above / drop below ----

ALTER TABLE connections DROP COLUMN detached_at;
DROP TABLE events;
DROP TABLE subscriptions;
