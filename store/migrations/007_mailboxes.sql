-- Connections with mailboxes. A connection is a credential and its life; a
-- mailbox is what is synced with it. A delegated connection has one
-- mailbox, its user's, under the connection's own ID; a service account's
-- connection has the shared mailboxes attached to it, each with its own ID,
-- state, settings and workflow. Synced mail is keyed by the mailbox.

ALTER TABLE connections DROP CONSTRAINT connections_mode_check;
UPDATE connections SET mode = 'service_account' WHERE mode = 'shared';
ALTER TABLE connections ADD CONSTRAINT connections_mode_check
    CHECK (mode IN ('delegated', 'service_account', 'application'));

CREATE TABLE mailboxes (
    id            text        PRIMARY KEY,
    connection_id text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    -- The SMTP address (lower case); a delegated mailbox learns it at consent.
    address       text,
    user_id       text,
    display_name  text,
    state         text        NOT NULL DEFAULT 'active'
                  CHECK (state IN ('pending_consent', 'connecting', 'active', 'reauth_required',
                                   'access_lost', 'disconnecting', 'disconnected')),
    reason        text,
    -- push or polling, and why a mailbox polls.
    sync_mode     text,
    poll_reason   text,
    settings      jsonb       NOT NULL DEFAULT '{}',
    detached_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A mailbox is synced once across every organisation while it is attached.
CREATE UNIQUE INDEX mailboxes_live_address
    ON mailboxes (lower(address))
    WHERE address IS NOT NULL AND state <> 'disconnected';

CREATE INDEX mailboxes_connection ON mailboxes (connection_id, id);

INSERT INTO mailboxes (id, connection_id, address, user_id, display_name, state, settings, detached_at, created_at, updated_at)
SELECT id, id, mailbox, user_id, display_name, state, settings, detached_at, created_at, updated_at FROM connections;

ALTER TABLE folders RENAME COLUMN connection_id TO mailbox_id;
ALTER TABLE folders DROP CONSTRAINT folders_connection_id_fkey;
ALTER TABLE folders ADD CONSTRAINT folders_mailbox_id_fkey
    FOREIGN KEY (mailbox_id) REFERENCES mailboxes (id) ON DELETE CASCADE;

ALTER TABLE messages RENAME COLUMN connection_id TO mailbox_id;
ALTER TABLE messages DROP CONSTRAINT messages_connection_id_fkey;
ALTER TABLE messages ADD CONSTRAINT messages_mailbox_id_fkey
    FOREIGN KEY (mailbox_id) REFERENCES mailboxes (id) ON DELETE CASCADE;

ALTER TABLE attachments RENAME COLUMN connection_id TO mailbox_id;

-- Events stay the connection's (the app's feed is per connection); those
-- about one mailbox also name it.
ALTER TABLE events ADD COLUMN mailbox_id text;
UPDATE events SET mailbox_id = connection_id WHERE type LIKE 'message.%' OR type LIKE 'folder.%';

---- create above / drop below ----

ALTER TABLE events DROP COLUMN mailbox_id;
ALTER TABLE attachments RENAME COLUMN mailbox_id TO connection_id;
ALTER TABLE messages DROP CONSTRAINT messages_mailbox_id_fkey;
DELETE FROM messages WHERE mailbox_id NOT IN (SELECT id FROM connections);
ALTER TABLE messages RENAME COLUMN mailbox_id TO connection_id;
ALTER TABLE messages ADD CONSTRAINT messages_connection_id_fkey
    FOREIGN KEY (connection_id) REFERENCES connections (id) ON DELETE CASCADE;
ALTER TABLE folders DROP CONSTRAINT folders_mailbox_id_fkey;
DELETE FROM folders WHERE mailbox_id NOT IN (SELECT id FROM connections);
ALTER TABLE folders RENAME COLUMN mailbox_id TO connection_id;
ALTER TABLE folders ADD CONSTRAINT folders_connection_id_fkey
    FOREIGN KEY (connection_id) REFERENCES connections (id) ON DELETE CASCADE;
DROP TABLE mailboxes;
ALTER TABLE connections DROP CONSTRAINT connections_mode_check;
UPDATE connections SET mode = 'shared' WHERE mode = 'service_account';
ALTER TABLE connections ADD CONSTRAINT connections_mode_check
    CHECK (mode IN ('delegated', 'shared', 'application'));
