-- Parked deliveries are counted at every metrics scrape; like the pending
-- ones (webhook_deliveries_due), they are a few rows of a large table.

CREATE INDEX webhook_deliveries_parked ON webhook_deliveries (event_seq) WHERE state = 'parked';

---- create above / drop below ----

DROP INDEX webhook_deliveries_parked;
