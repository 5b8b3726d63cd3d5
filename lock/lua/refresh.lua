-- refresh(ticket, claimer, ttl)
-- Extends the owner's lease. Returns result(status): 1 still held, 5 lost.
local ticket, claimer, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])

evict()

if not is_owner(ticket, claimer) then
  return result(5, 0)
end
redis.call('HSET', K_OWNER, 'e', NOW + ttl)
return result(1, OWNER.k)
