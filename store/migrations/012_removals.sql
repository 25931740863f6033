-- Removals a folder's delta reported during a live round, kept until the
-- round has read every synced folder: Graph reports a move between two
-- folders as a removal in one folder's delta and an arrival in the other's
-- (docs/graph.md#delta-queries), so a removal is applied only once the
-- arrival had its chance to file the message elsewhere. Written with the
-- cursor that covers it, so a crash between the two loses nothing.

CREATE TABLE removals (
    mailbox_id text        NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    folder_id  text        NOT NULL,
    id         text        NOT NULL, -- the message's immutable ID
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, folder_id, id)
);

---- create above / drop below ----

DROP TABLE removals;
