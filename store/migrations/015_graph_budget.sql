-- Graph's per app and mailbox limits (docs/graph.md#throttling), shared by
-- every process: graph_slots holds one row per request in flight, leased
-- (a process that dies loses its rows when they expire), at most the
-- limit's number of slots per key; graph_buckets holds a token bucket per
-- key, refilled from the time of its last update. Times are Postgres's own
-- clock, so the processes' clocks do not matter. Both tables are unlogged:
-- they hold seconds of state, not records, and are emptied by a crash of
-- the database (the budget starts afresh) rather than written to the WAL
-- on every Graph request.

CREATE UNLOGGED TABLE graph_slots (
    key        text        NOT NULL,
    slot       integer     NOT NULL,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key, slot)
) WITH (fillfactor = 50);

CREATE UNLOGGED TABLE graph_buckets (
    key        text             PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz      NOT NULL
) WITH (fillfactor = 50);

---- create above / drop below ----

DROP TABLE graph_buckets;
DROP TABLE graph_slots;
