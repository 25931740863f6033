-- What Microsoft Graph's mailboxSettings say of an application
-- connection's mailbox (time zone, language, automatic replies), as last
-- read, and when (docs/application.md#mailbox-settings).

ALTER TABLE mailboxes ADD COLUMN graph_settings jsonb, ADD COLUMN graph_settings_read_at timestamptz;

---- create above / drop below ----

ALTER TABLE mailboxes DROP COLUMN graph_settings, DROP COLUMN graph_settings_read_at;
