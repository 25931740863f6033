-- A send's place in its mailbox's rates is now taken when the send is
-- submitted to Graph, not when it is asked for. The row written when the
-- send is recorded is a booking (taken false): its place in the queue and
-- the time the API told the app; just before the submission the booking
-- becomes the slot itself (taken true, at the time it was taken), or moves
-- to the next free time when the mailbox's rates have none now. Only taken
-- slots hold the rates; bookings order the sends that wait.
ALTER TABLE send_slots ADD COLUMN taken boolean NOT NULL DEFAULT false;

-- Sends already past their queue went at their slot's time.
UPDATE send_slots l SET taken = true
FROM sends s
WHERE s.id = l.send_id AND s.state NOT IN ('queued', 'reauth_required', 'draft');

---- create above / drop below ----

ALTER TABLE send_slots DROP COLUMN taken;
