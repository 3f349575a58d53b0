-- 0002: engine time in the audit index. The log stamps every record with its append
-- time (events/clock.h); `event_time` stays the producer's CloudEvents `time`, as given.
-- NULL only for rows written before this migration (a rebuild fills them).
ALTER TABLE agentos_rm.events ADD COLUMN appended_at timestamptz;
