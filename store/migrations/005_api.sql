-- The API: organisations and their hashed API keys, who owns and who sees a
-- connection, the app's webhook endpoint, and the events table becoming an
-- outbox (delivery state per event, set in the transaction that records it).

CREATE TABLE orgs (
    id                   text        PRIMARY KEY,
    name                 text        NOT NULL,
    connections_per_user integer     NOT NULL DEFAULT 1 CHECK (connections_per_user > 0),
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          text        PRIMARY KEY, -- the public half of the key
    org_id      text        NOT NULL REFERENCES orgs (id),
    name        text        NOT NULL DEFAULT '',
    secret_hash bytea       NOT NULL,    -- SHA-256 of the secret half
    admin       boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE INDEX api_keys_org ON api_keys (org_id);

ALTER TABLE connections
    ADD COLUMN visibility text NOT NULL DEFAULT 'owner' CHECK (visibility IN ('owner', 'organisation')),
    ADD COLUMN settings   jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN return_url text;

CREATE TABLE webhook_endpoints (
    org_id     text        PRIMARY KEY REFERENCES orgs (id),
    url        text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE events
    ADD COLUMN delivery        text NOT NULL DEFAULT 'none' CHECK (delivery IN ('none', 'pending', 'delivered', 'parked')),
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error      text,
    ADD COLUMN delivered_at    timestamptz;

CREATE INDEX events_due ON events (next_attempt_at) WHERE delivery = 'pending';

-- An event is queued for delivery when its organisation has an endpoint,
-- whoever inserts it, in the inserting transaction.
CREATE FUNCTION events_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_endpoints w JOIN connections c ON c.org_id = w.org_id
               WHERE c.id = NEW.connection_id) THEN
        NEW.delivery := 'pending';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER events_queue BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_queue();

---- create above / drop below ----

DROP TRIGGER events_queue ON events;
DROP FUNCTION events_queue();
DROP INDEX events_due;
ALTER TABLE events DROP COLUMN delivered_at, DROP COLUMN last_error, DROP COLUMN next_attempt_at,
    DROP COLUMN attempts, DROP COLUMN delivery;
DROP TABLE webhook_endpoints;
ALTER TABLE connections DROP COLUMN return_url, DROP COLUMN settings, DROP COLUMN visibility;
DROP TABLE api_keys;
DROP TABLE orgs;
