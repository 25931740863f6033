-- A connection its owner shares with named app users of its organisation:
-- visibility 'users', and one row per user it is shared with. Changing
-- the visibility replaces the rows in the same transaction.

ALTER TABLE connections DROP CONSTRAINT connections_visibility_check;
ALTER TABLE connections ADD CONSTRAINT connections_visibility_check
    CHECK (visibility IN ('owner', 'organisation', 'users'));

CREATE TABLE connection_shares (
    connection_id text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    user_id       text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, user_id)
);

-- What a user may see: the connections shared with it by name.
CREATE INDEX connection_shares_user ON connection_shares (user_id, connection_id);

---- create above / drop below ----

DROP TABLE connection_shares;
UPDATE connections SET visibility = 'owner' WHERE visibility = 'users';
ALTER TABLE connections DROP CONSTRAINT connections_visibility_check;
ALTER TABLE connections ADD CONSTRAINT connections_visibility_check
    CHECK (visibility IN ('owner', 'organisation'));
