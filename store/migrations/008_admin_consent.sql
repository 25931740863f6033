-- Tenant admin consent: each admin-consent link the API made, and how
-- Microsoft answered it. The state nonce of a link never lives here: only
-- its SHA-256, to check the callback (the nonce of a link made for a
-- connection is kept in Vault, to show the same link again). And the
-- connection state of a sign-in refused until an administrator approves
-- the app.

CREATE TABLE admin_consents (
    id             text        PRIMARY KEY,
    org_id         text        NOT NULL,
    -- The tenant as asked: a tenant ID, a domain, or organizations.
    tenant         text        NOT NULL,
    connection_id  text,
    scopes         text[]      NOT NULL,
    state_hash     bytea       NOT NULL,
    requested_by   text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    answered_at    timestamptz,
    outcome        text        CHECK (outcome IN ('granted', 'refused')),
    -- The tenant Microsoft's answer names (a consent only).
    tenant_id      text,
    granted_scopes text[],
    reason         text,
    reason_text    text,
    CHECK ((answered_at IS NULL) = (outcome IS NULL))
);

CREATE INDEX admin_consents_tenant_id ON admin_consents (org_id, tenant_id, answered_at DESC) WHERE tenant_id IS NOT NULL;
CREATE INDEX admin_consents_tenant ON admin_consents (org_id, tenant, created_at DESC);
CREATE INDEX admin_consents_connection ON admin_consents (connection_id, created_at DESC) WHERE connection_id IS NOT NULL;

ALTER TABLE connections DROP CONSTRAINT connections_state_check;
ALTER TABLE connections ADD CONSTRAINT connections_state_check
    CHECK (state IN ('pending_consent', 'admin_consent_required', 'connecting', 'active',
                     'reauth_required', 'disconnecting', 'disconnected'));

-- A delegated connection's mailbox row follows its state.
ALTER TABLE mailboxes DROP CONSTRAINT mailboxes_state_check;
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_state_check
    CHECK (state IN ('pending_consent', 'admin_consent_required', 'connecting', 'active', 'reauth_required',
                     'access_lost', 'disconnecting', 'disconnected'));

---- create above / drop below ----

UPDATE connections SET state = 'pending_consent' WHERE state = 'admin_consent_required';
UPDATE mailboxes SET state = 'pending_consent' WHERE state = 'admin_consent_required';
ALTER TABLE mailboxes DROP CONSTRAINT mailboxes_state_check;
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_state_check
    CHECK (state IN ('pending_consent', 'connecting', 'active', 'reauth_required',
                     'access_lost', 'disconnecting', 'disconnected'));
ALTER TABLE connections DROP CONSTRAINT connections_state_check;
ALTER TABLE connections ADD CONSTRAINT connections_state_check
    CHECK (state IN ('pending_consent', 'connecting', 'active',
                     'reauth_required', 'disconnecting', 'disconnected'));
DROP TABLE admin_consents;
