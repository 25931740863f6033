-- Widening a connection's window backfills only the gap before the window
-- already covered, with its own cursor, so the folder's delta link (the
-- live sync position) is never disturbed.
ALTER TABLE folders ADD COLUMN gap_cursor text;

---- create above / drop below ----

ALTER TABLE folders DROP COLUMN gap_cursor;
