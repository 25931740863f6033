-- The connection registry: one row per connection, mirrored from its
-- workflow so the API can list and look up connections without Temporal.
-- Nothing secret lives here: tokens are in Vault, referenced by connection ID.
CREATE TABLE connections (
    id           text        PRIMARY KEY,
    org_id       text        NOT NULL,
    owner_id     text        NOT NULL,
    state        text        NOT NULL DEFAULT 'pending_consent'
                 CHECK (state IN ('pending_consent', 'connecting', 'active',
                                  'reauth_required', 'disconnecting', 'disconnected')),
    mode         text        NOT NULL DEFAULT 'delegated'
                 CHECK (mode IN ('delegated', 'shared', 'application')),
    tenant_id    text,
    mailbox      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A mailbox is connected once across every organisation while the
-- connection is alive (C6).
CREATE UNIQUE INDEX connections_live_mailbox
    ON connections (lower(mailbox))
    WHERE mailbox IS NOT NULL AND state <> 'disconnected';

CREATE INDEX connections_org_owner ON connections (org_id, owner_id);

---- create above / drop below ----

DROP TABLE connections;
