-- An application connection's directory: every user /users/delta reported,
-- whether its mailbox is synced (and under which mailbox ID), excluded
-- (with the reason), or left; and where the delta query stands. The
-- connection's workflow holds none of this, so its history stays small
-- however many users the organisation has.

CREATE TABLE directory_users (
    connection_id text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    user_id       text        NOT NULL,
    address       text,
    display_name  text,
    shared        boolean     NOT NULL DEFAULT false,
    -- joining and leaving are changes the workflow has yet to apply.
    status        text        NOT NULL CHECK (status IN ('joining', 'syncing', 'leaving', 'left', 'excluded')),
    reason        text,
    mailbox_id    text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, user_id)
);

CREATE INDEX directory_users_pending ON directory_users (connection_id, user_id)
    WHERE status IN ('joining', 'leaving');

CREATE TABLE directory_cursors (
    connection_id text        PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    -- The nextLink or deltaLink to follow next.
    link          text        NOT NULL,
    rounds        integer     NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE directory_cursors;
DROP TABLE directory_users;
