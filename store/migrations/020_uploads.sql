-- Uploads: a file an app sends to outlookd in byte ranges, to attach to a
-- send or a draft later by its ID (docs/sending.md#large-attachments). The
-- upload belongs to the connection it was made on (and, from a service
-- account, to an attached mailbox); its ranges are rows of upload_chunks,
-- so that any API process takes the next one. A finished upload is
-- attached to one send at most; its bytes are deleted when that send is
-- final, its row when it expires.

CREATE TABLE uploads (
    id            text        PRIMARY KEY,
    connection_id text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    mailbox_id    text,
    name          text        NOT NULL,
    content_type  text        NOT NULL,
    size          bigint      NOT NULL CHECK (size > 0),
    received      bigint      NOT NULL DEFAULT 0, -- bytes in, from 0 without a gap
    send_id       text,                           -- the send it was attached to
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    CHECK (received <= size)
);

CREATE INDEX uploads_expiry ON uploads (expires_at);
CREATE INDEX uploads_send ON uploads (send_id) WHERE send_id IS NOT NULL;

-- One row a range the app PUT, in order: start is its first byte's
-- offset; the ranges of an upload follow one another without overlap.
CREATE TABLE upload_chunks (
    upload_id text   NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    start     bigint NOT NULL,
    data      bytea  NOT NULL,
    sha256    bytea  NOT NULL, -- of data: a range PUT again is told from another
    PRIMARY KEY (upload_id, start)
);

-- A send's attachment may name an upload instead of carrying its bytes.
ALTER TABLE send_attachments ADD COLUMN upload_id text;

---- create above / drop below ----

ALTER TABLE send_attachments DROP COLUMN upload_id;
DROP TABLE upload_chunks;
DROP TABLE uploads;
