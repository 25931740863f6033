-- Synced mail. Every row is keyed by the connection and Graph's immutable ID,
-- so writes are idempotent upserts; a folder's cursor (its delta or page
-- link) is advanced in the same transaction as the rows it covers.

ALTER TABLE connections
    ADD COLUMN user_id      text,
    ADD COLUMN display_name text,
    ADD COLUMN granted_scopes text[] NOT NULL DEFAULT '{}';

CREATE TABLE folders (
    connection_id  text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    id             text        NOT NULL,
    parent_id      text,
    display_name   text        NOT NULL,
    well_known     text,
    -- backfill: the first delta round is being paged; live: cursor is a
    -- deltaLink the live sync continues from.
    phase          text        NOT NULL DEFAULT 'backfill' CHECK (phase IN ('backfill', 'live')),
    cursor         text,
    window_start   timestamptz NOT NULL,
    synced         bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, id)
);

CREATE TABLE messages (
    connection_id       text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    id                  text        NOT NULL, -- immutable ID
    folder_id           text        NOT NULL,
    internet_message_id text,
    conversation_id     text,
    change_key          text,
    subject             text,
    from_name           text,
    from_address        text,
    to_recipients       jsonb       NOT NULL DEFAULT '[]',
    cc_recipients       jsonb       NOT NULL DEFAULT '[]',
    bcc_recipients      jsonb       NOT NULL DEFAULT '[]',
    received_at         timestamptz,
    sent_at             timestamptz,
    is_read             boolean     NOT NULL DEFAULT false,
    is_draft            boolean     NOT NULL DEFAULT false,
    categories          text[]      NOT NULL DEFAULT '{}',
    importance          text,
    has_attachments     boolean     NOT NULL DEFAULT false,
    body_preview        text,
    body_content_type   text,
    body                text,        -- only when the storage policy allows
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, id)
);

CREATE INDEX messages_folder ON messages (connection_id, folder_id, received_at DESC);
CREATE INDEX messages_received ON messages (connection_id, received_at DESC);

CREATE TABLE attachments (
    connection_id text    NOT NULL,
    message_id    text    NOT NULL,
    id            text    NOT NULL,
    name          text,
    content_type  text,
    size          bigint,
    is_inline     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (connection_id, message_id, id),
    FOREIGN KEY (connection_id, message_id) REFERENCES messages (connection_id, id) ON DELETE CASCADE
);

---- create above / drop below ----

DROP TABLE attachments;
DROP TABLE messages;
DROP TABLE folders;
ALTER TABLE connections DROP COLUMN user_id, DROP COLUMN display_name, DROP COLUMN granted_scopes;
