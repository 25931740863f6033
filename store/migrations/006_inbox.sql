-- Graph notifications accepted by the receiver and not yet handed to their
-- connection's workflow. The receiver answers Graph only once its rows are
-- committed here; a forwarder turns them into signals (one per connection
-- however many arrived) and deletes them once Temporal has taken them.

CREATE TABLE notification_inbox (
    seq           bigserial   PRIMARY KEY,
    connection_id text        NOT NULL,
    signal        text        NOT NULL CHECK (signal IN ('changes', 'lifecycle')),
    payload       jsonb,
    received_at   timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE notification_inbox;
