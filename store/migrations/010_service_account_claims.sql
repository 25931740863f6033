-- A service account's connection names the account it signs in as, but
-- syncs no mailbox of its own (its attached mailboxes are claimed by
-- mailboxes_live_address): it claims no mailbox. The account's own mailbox
-- may be connected by a delegated connection, and the account may sign in
-- for more than one connection.

DROP INDEX connections_live_mailbox;
CREATE UNIQUE INDEX connections_live_mailbox
    ON connections (lower(mailbox))
    WHERE mailbox IS NOT NULL AND state <> 'disconnected' AND mode <> 'service_account';

---- create above / drop below ----

-- Fails while two live connections name one account (a delegated one and a
-- service account's): disconnect one first.
DROP INDEX connections_live_mailbox;
CREATE UNIQUE INDEX connections_live_mailbox
    ON connections (lower(mailbox))
    WHERE mailbox IS NOT NULL AND state <> 'disconnected';
