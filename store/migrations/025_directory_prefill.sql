-- An application connection backfills a joining user's mailbox ahead of
-- the mailbox's workflow (docs/application.md#onboarding), many mailboxes
-- in one activity, and writes here what it did: the window covered and
-- each folder's progress, handed to the workflow when it starts so that it
-- begins live. NULL: not done yet. It belongs to the row's mailbox ID and
-- is forgotten with it.
ALTER TABLE directory_users ADD COLUMN prefill jsonb;

CREATE INDEX directory_users_prefill ON directory_users (connection_id, user_id)
    WHERE status = 'joining' AND prefill IS NULL;

---- create above / drop below ----

DROP INDEX directory_users_prefill;
ALTER TABLE directory_users DROP COLUMN prefill;
