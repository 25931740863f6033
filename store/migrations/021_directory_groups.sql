-- The members (transitive, users only) of the groups an application
-- connection's selection names, as last read: a discovery round reads
-- them again and compares, since /users/delta says nothing of
-- membership and /groups/delta nothing of nested groups
-- (docs/application.md#which-mailboxes).

CREATE TABLE directory_group_members (
    connection_id text        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    user_id       text        NOT NULL,
    PRIMARY KEY (connection_id, user_id)
);

---- create above / drop below ----

DROP TABLE directory_group_members;
