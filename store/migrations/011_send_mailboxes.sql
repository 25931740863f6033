-- Sends from a mailbox a service account has attached: a send names the
-- mailbox it goes from (NULL: the connection's own mailbox), and, once
-- sent, who Exchange recorded as its sender (the mailbox itself with Send
-- As, the account with Send on Behalf). A draft made through the API is a
-- row of kind 'draft' until it is sent.

ALTER TABLE sends ADD COLUMN mailbox_id text REFERENCES mailboxes (id) ON DELETE CASCADE;
ALTER TABLE sends ADD COLUMN sender text;

CREATE INDEX sends_mailbox ON sends (mailbox_id, created_at DESC, id DESC) WHERE mailbox_id IS NOT NULL;

-- A draft made through the API waits in state 'draft' (it holds no place in
-- the sending rates) until the app sends it.
ALTER TABLE sends DROP CONSTRAINT sends_state_check;
ALTER TABLE sends ADD CONSTRAINT sends_state_check
    CHECK (state IN ('draft', 'queued', 'sending', 'sent', 'failed', 'canceled', 'reauth_required'));

---- create above / drop below ----

DELETE FROM sends WHERE state = 'draft';
ALTER TABLE sends DROP CONSTRAINT sends_state_check;
ALTER TABLE sends ADD CONSTRAINT sends_state_check
    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'canceled', 'reauth_required'));
DROP INDEX sends_mailbox;
ALTER TABLE sends DROP COLUMN sender;
ALTER TABLE sends DROP COLUMN mailbox_id;
