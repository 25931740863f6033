-- The number of the last submission of a send that took its slot and may
-- have left for Graph. A send's workflow numbers its submissions and runs
-- each inside its workflow task (a local activity): a submission run again
-- after its worker died finds its own number here and sends nothing, its
-- outcome learnt by looking in the mailbox (docs/sending.md).
ALTER TABLE sends ADD COLUMN submission integer NOT NULL DEFAULT 0;

---- create above / drop below ----

ALTER TABLE sends DROP COLUMN submission;
