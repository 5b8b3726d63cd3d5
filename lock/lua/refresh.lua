-- refresh(ticket, claimer, ttl, grace)
-- Extends the owner's lease. Returns result(status): 1 still held, 5 lost.
local ticket, claimer, ttl, grace = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

evict()

if not is_owner(ticket, claimer) then
  return result(5, 0)
end
redis.call('HSET', K_OWNER, 'e', NOW + ttl)
redis.call('PEXPIRE', K_OWNER, ttl + grace)
return result(1, OWNER.k)
