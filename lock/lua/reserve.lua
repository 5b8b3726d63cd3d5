-- reserve(ticket, claim, holder, purpose, grace)
-- Takes a place at the back of the line now for a ticket that a later task
-- will claim (within claim ms of reaching the front). When the lock is free
-- and nobody waits, the ticket is granted at once, unclaimed. Idempotent.
-- Returns result(status, value): 1 granted unclaimed (value token), 2 queued
-- (value position).
local ticket, claim, holder, purpose = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local grace = tonumber(ARGV[5])

evict()

if OWNER and OWNER.t == ticket then
  return result(1, OWNER.k)
end
if winfo(ticket) then
  return result(2, redis.call('LPOS', K_LINE, ticket))
end
if not OWNER and redis.call('LLEN', K_LINE) == 0 then
  local tok = make_owner(ticket, '', claim, holder, purpose, 'reserve', grace)
  return result(1, tok)
end
local info = {h = holder, p = purpose, j = NOW, c = '', ch = '', claim = claim, m = 'reserve', r = 1}
local pos = redis.call('RPUSH', K_LINE, ticket) - 1
redis.call('HSET', K_WAITERS, ticket, cjson.encode(info))
redis.call('ZADD', K_LEASES, NOW + claim, ticket)
touch(NOW + claim, grace)
return result(2, pos)
