-- Keep the updates of a message's status HOT (heap-only: no new entry in every index of `messages`).
-- 0014's index of failed sends named `status` in its predicate, so every status change of every message
-- (pending, sending, accepted, sent, delivered, read) had to add an entry to all seven indexes of the table.
-- The same index over `failed_at` alone: only a failure sets it, and the operator's and the alerts' query
-- (`status = 'failed' AND failed_at > ...`) still finds the last 24 hours' failures through it.
DROP INDEX IF EXISTS messages_failed_time;
CREATE INDEX messages_failed_time ON messages (failed_at) WHERE failed_at IS NOT NULL;
