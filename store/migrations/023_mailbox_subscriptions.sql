-- Subscriptions of an application connection's mailboxes: each belongs to
-- its mailbox (empty for a delegated connection's own), and the
-- notifications waiting in the inbox name the mailbox whose workflow they
-- are signalled to (docs/application.md#push).

ALTER TABLE subscriptions ADD COLUMN mailbox_id text NOT NULL DEFAULT '';
CREATE INDEX subscriptions_mailbox ON subscriptions (mailbox_id) WHERE mailbox_id <> '';
ALTER TABLE notification_inbox ADD COLUMN mailbox_id text NOT NULL DEFAULT '';

---- create above / drop below ----

ALTER TABLE notification_inbox DROP COLUMN mailbox_id;
DROP INDEX subscriptions_mailbox;
ALTER TABLE subscriptions DROP COLUMN mailbox_id;
