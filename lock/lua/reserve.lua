-- reserve(ticket, claim, holder, purpose, grace)
-- Takes a place at the back of the line now for a ticket that a later task
-- will claim: its claimer must arrive within claim ms, and if the ticket
-- reaches the front first it holds the lock, unclaimed, for at most claim ms.
-- When the lock is free and nobody waits, the ticket is granted at once,
-- unclaimed. Idempotent.
-- Returns result(status, value): 1 granted unclaimed (value token), 2 queued
-- (value position).
local ticket, claim, holder, purpose = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local grace = tonumber(ARGV[5])

evict()

if OWNER and OWNER.t == ticket then
  return result(1, OWNER.k)
end
local info = winfo(ticket)
if alive(info) then
  return result(2, redis.call('LPOS', K_LINE, ticket))
end
if info then
  dequeue(ticket)
  count_dead(info)
end
if not OWNER then
  if not live_head() then
    local tok = make_owner(ticket, '', NOW + claim, holder, purpose, 'reserve')
    return result(1, tok)
  end
  -- Free while others wait (an owner expired): pass it to the head first.
  promote_head()
end
info = {h = holder, p = purpose, j = NOW, c = '', ch = '', claim = claim, m = 'reserve', r = 1, x = NOW + claim}
local pos = redis.call('RPUSH', K_LINE, ticket) - 1
redis.call('HSET', K_WAITERS, ticket, cjson.encode(info))
touch(info.x, grace)
return result(2, pos)
