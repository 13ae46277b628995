-- get: the live record, if any (a processing record expires with its lease).
-- KEYS[1]  the record
-- Returns  the record as stored (the caller decodes it) | false (absent)
return redis.call('GET', KEYS[1])
