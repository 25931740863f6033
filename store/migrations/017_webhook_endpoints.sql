-- Webhook endpoints become many per organisation, each with the event
-- types it takes (a list of patterns: a type, a family such as "send.*",
-- or "*"). Delivery state moves from the event to a row per endpoint and
-- event, so each endpoint retries and parks on its own, and an event is
-- queued once per endpoint: the row's key is (endpoint, event).

ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_pkey;
ALTER TABLE webhook_endpoints
    ADD COLUMN id          text,
    ADD COLUMN events      text[]  NOT NULL DEFAULT '{*}',
    ADD COLUMN description text    NOT NULL DEFAULT '',
    -- org_secret: the endpoint signs with its organisation's secret, as
    -- the one endpoint an organisation had before; a rotation gives it
    -- its own, as every endpoint made since has.
    ADD COLUMN org_secret  boolean NOT NULL DEFAULT false,
    -- feed_cursor: the newest event of the organisation when the
    -- endpoint was made; what came before is in the pull feed only.
    ADD COLUMN feed_cursor bigint  NOT NULL DEFAULT 0;
UPDATE webhook_endpoints SET id = 'we_' || substr(md5(org_id || clock_timestamp()::text), 1, 16), org_secret = true;
ALTER TABLE webhook_endpoints ALTER COLUMN id SET NOT NULL, ADD PRIMARY KEY (id);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id);

CREATE TABLE webhook_deliveries (
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq       bigint      NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'parked')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz,
    PRIMARY KEY (endpoint_id, event_seq)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);

INSERT INTO webhook_deliveries (endpoint_id, event_seq, state, attempts, next_attempt_at, last_error, delivered_at)
SELECT w.id, e.seq, e.delivery, e.attempts, e.next_attempt_at, e.last_error, e.delivered_at
FROM events e JOIN connections c ON c.id = e.connection_id JOIN webhook_endpoints w ON w.org_id = c.org_id
WHERE e.delivery <> 'none';

DROP TRIGGER events_queue ON events;
DROP FUNCTION events_queue();
DROP INDEX events_due;
ALTER TABLE events DROP COLUMN delivery, DROP COLUMN attempts, DROP COLUMN next_attempt_at,
    DROP COLUMN last_error, DROP COLUMN delivered_at;

-- Whether an event type is one an endpoint's patterns take.
CREATE FUNCTION webhook_event_matches(patterns text[], type text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT EXISTS (SELECT 1 FROM unnest(patterns) p
                   WHERE p = '*' OR p = type OR (right(p, 2) = '.*' AND starts_with(type, left(p, -1))))
$$;

-- An event is queued for each endpoint of its organisation that takes its
-- type, whoever inserts it, in the inserting transaction. An event that
-- was already recorded (ON CONFLICT DO NOTHING) inserts no row, so it is
-- never queued twice.
CREATE FUNCTION events_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, event_seq)
    SELECT w.id, NEW.seq FROM webhook_endpoints w JOIN connections c ON c.org_id = w.org_id
    WHERE c.id = NEW.connection_id AND webhook_event_matches(w.events, NEW.type)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER events_fan_out AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_fan_out();

---- create above / drop below ----

DROP TRIGGER events_fan_out ON events;
DROP FUNCTION events_fan_out();
DROP FUNCTION webhook_event_matches(text[], text);
ALTER TABLE events
    ADD COLUMN delivery        text NOT NULL DEFAULT 'none' CHECK (delivery IN ('none', 'pending', 'delivered', 'parked')),
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error      text,
    ADD COLUMN delivered_at    timestamptz;
CREATE INDEX events_due ON events (next_attempt_at) WHERE delivery = 'pending';
-- One endpoint per organisation again: the oldest keeps its deliveries.
DELETE FROM webhook_endpoints w USING webhook_endpoints o
    WHERE o.org_id = w.org_id AND (o.created_at, o.id) < (w.created_at, w.id);
UPDATE events e SET delivery = d.state, attempts = d.attempts, next_attempt_at = d.next_attempt_at,
    last_error = d.last_error, delivered_at = d.delivered_at
    FROM webhook_deliveries d WHERE d.event_seq = e.seq;
DELETE FROM events WHERE type = 'test';
DROP TABLE webhook_deliveries;
DROP INDEX webhook_endpoints_org;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_pkey;
ALTER TABLE webhook_endpoints DROP COLUMN feed_cursor, DROP COLUMN org_secret, DROP COLUMN description,
    DROP COLUMN events, DROP COLUMN id;
ALTER TABLE webhook_endpoints ADD PRIMARY KEY (org_id);
CREATE FUNCTION events_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_endpoints w JOIN connections c ON c.org_id = w.org_id
               WHERE c.id = NEW.connection_id) THEN
        NEW.delivery := 'pending';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER events_queue BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_queue();
