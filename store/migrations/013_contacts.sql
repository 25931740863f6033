-- The app's contacts of a mailbox: with the contact filter on, only mail
-- from or to one of them is stored (docs/contacts.md). Keyed like the mail,
-- by mailbox (a delegated connection's mailbox has the connection's ID).
-- Addresses are stored lower case: Exchange compares SMTP addresses without
-- regard to case. fetched_at is when the contact's past mail was fetched
-- (NULL: waiting for the mailbox's workflow to fetch it).

CREATE TABLE contacts (
    mailbox_id text        NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    address    text        NOT NULL CHECK (address = lower(address)),
    name       text,
    added_at   timestamptz NOT NULL DEFAULT now(),
    fetched_at timestamptz,
    PRIMARY KEY (mailbox_id, address)
);

CREATE INDEX contacts_unfetched ON contacts (mailbox_id, address) WHERE fetched_at IS NULL;

-- The addresses a message is filtered on: its sender and its To and Cc
-- recipients, lower case.
CREATE FUNCTION message_addresses(from_address text, to_recipients jsonb, cc_recipients jsonb) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_remove(lower(btrim(from_address)) || ARRAY(SELECT lower(btrim(r->>'address')) FROM jsonb_array_elements(to_recipients || cc_recipients) r), NULL)
$$;

---- create above / drop below ----

DROP FUNCTION message_addresses(text, jsonb, jsonb);
DROP TABLE contacts;
