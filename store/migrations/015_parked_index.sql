-- Parked deliveries are counted at every metrics scrape; like the pending
-- ones (events_due), they are a few rows of a large table.

CREATE INDEX events_parked ON events (seq) WHERE delivery = 'parked';

---- create above / drop below ----

DROP INDEX events_parked;
