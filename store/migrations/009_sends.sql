-- Sends: each message the app asked a connection to send, named by the
-- app's Idempotency-Key. The row is written by the API before the send's
-- workflow starts and then only by that workflow; it holds the message as
-- the app gave it (mail, as the synced mail is; never a token), a hash of
-- the request to tell a retry from another request under the same key, the
-- state, and the Graph IDs of the draft and of the copy in Sent Items.

CREATE TABLE sends (
    id              text        PRIMARY KEY, -- built from the connection and the key
    connection_id   text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    idempotency_key text        NOT NULL,
    request_hash    bytea       NOT NULL,    -- SHA-256 of the request as decoded
    kind            text        NOT NULL DEFAULT 'new' CHECK (kind IN ('new', 'reply', 'reply_all', 'forward', 'draft')),
    message         jsonb       NOT NULL,
    recipients      integer     NOT NULL DEFAULT 0,
    state           text        NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'canceled', 'reauth_required')),
    reason          text,
    reason_text     text,
    draft_id        text,
    message_id      text,                    -- the copy in Sent Items
    not_before      timestamptz,             -- a queued send goes out at this time
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (connection_id, idempotency_key)
);

CREATE INDEX sends_connection ON sends (connection_id, created_at DESC, id DESC);

-- Attachments sent inline with the request, kept apart so that listing
-- sends never reads their bytes; the bytes are emptied once the send is
-- final.
CREATE TABLE send_attachments (
    send_id      text    NOT NULL REFERENCES sends (id) ON DELETE CASCADE,
    ord          integer NOT NULL,
    name         text    NOT NULL,
    content_type text    NOT NULL,
    is_inline    boolean NOT NULL DEFAULT false,
    content_id   text,
    size         bigint  NOT NULL,
    content      bytea   NOT NULL,
    PRIMARY KEY (send_id, ord)
);

-- Each send's place in its mailbox's sending rates (30 messages a minute,
-- a day's recipients), taken when the send is recorded, under a
-- transaction-scoped advisory lock on the mailbox, so every process
-- counts the same rows.
CREATE TABLE send_slots (
    send_id    text        PRIMARY KEY REFERENCES sends (id) ON DELETE CASCADE,
    mailbox    text        NOT NULL,
    at         timestamptz NOT NULL,
    recipients integer     NOT NULL
);

CREATE INDEX send_slots_mailbox ON send_slots (mailbox, at);

---- create above / drop below ----

DROP TABLE send_slots;
DROP TABLE send_attachments;
DROP TABLE sends;
