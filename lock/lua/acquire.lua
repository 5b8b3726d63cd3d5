-- acquire(ticket, claimer, mode, ttl, holder, purpose, channel, grace, named, n)
-- Grants the lock to ticket when it may have it, queues it (patient mode) or
-- reports the holder (standard mode). Idempotent: a retry after a lost reply
-- finds the same grant or the same place in line. named is '1' when the
-- caller presented the ticket (a claim), which may have been spent. n (from 1)
-- numbers this run among the caller's: a waiter's record keeps the n of
-- the run that last renewed its lease, and the wake-up of its grant names
-- it (see wake in lib.lua).
-- Returns result(status, value, extra): status 1 granted (value token,
-- extra 1 when this claimed a handed-off or reserved ticket), 2 queued (value
-- position, 0 = head), 3 locked, 4 ticket claimed by someone else, 7 ticket
-- spent (claimed, then released or handed on).
local ticket, claimer, mode = ARGV[1], ARGV[2], ARGV[3]
local ttl, holder, purpose, channel = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local grace, named, n = tonumber(ARGV[8]), ARGV[9] == '1', tonumber(ARGV[10])

evict()

local function grant_self(claimed)
  local tok = make_owner(ticket, claimer, NOW + ttl, holder, purpose, mode)
  return result(1, tok, claimed, true)
end

local function join()
  -- Looked up even on a fresh ticket's first run: the client may send a
  -- run again after a broken connection, and it must find its place.
  local info = winfo(ticket)
  if info and not alive(info) then
    -- Its lease ran out while it stood in line: it starts again at the back.
    dequeue(ticket)
    count_dead(info)
    info = nil
  end
  local pos
  if info then
    if info.c and info.c ~= '' and info.c ~= claimer then
      return result(4, 0)
    end
    info.c, info.ch, info.ttl, info.m, info.n = claimer, channel, ttl, mode, n
    if holder ~= '' then info.h = holder end
    if purpose ~= '' then info.p = purpose end
  else
    info = {h = holder, p = purpose, j = NOW, c = claimer, ch = channel, ttl = ttl, m = mode, r = 0, n = n}
    -- A newcomer's place is the line's new length less one.
    pos = redis.call('RPUSH', K_LINE, ticket) - 1
  end
  info.x = NOW + ttl
  redis.call('HSET', K_WAITERS, ticket, cjson.encode(info))
  touch(info.x, grace)
  return result(2, pos or redis.call('LPOS', K_LINE, ticket), 0, true)
end

if OWNER and OWNER.t == ticket then
  if OWNER.c == '' or OWNER.c == claimer then
    -- Claim of a ticket handed to us, or the waiter granted by a release
    -- or handoff confirming its grant (a wake-up it could not take
    -- prompts this run), or a re-run of our own grant: keep the token
    -- granted, take over the lease from now.
    local f = {'c', claimer, 'e', NOW + ttl, 'm', mode}
    if holder ~= '' then f[#f + 1] = 'h'; f[#f + 1] = holder end
    if purpose ~= '' then f[#f + 1] = 'p'; f[#f + 1] = purpose end
    redis.call('HSET', K_OWNER, unpack(f))
    local claimed = 0
    if OWNER.c == '' then claimed = 1 end
    return result(1, OWNER.k, claimed)
  end
  return result(4, 0)
end

if named and spent(ticket) then
  return result(7, 0)
end

if not OWNER then
  local head, info = live_head()
  if not head then
    return grant_self(0)
  end
  if head == ticket then
    if info.c and info.c ~= '' and info.c ~= claimer then
      return result(4, 0)
    end
    dequeue(ticket)
    local claimed = 0
    if info.r == 1 then claimed = 1 end
    return grant_self(claimed)
  end
  -- Free while others wait (an owner expired): the lock is never left free
  -- while someone waits, so pass it to the head now.
  promote_head()
end

-- Only patient callers wait in line; a standard caller presenting a ticket
-- that is queued (a reservation) leaves it for a patient claimer.
if mode == 'patient' then
  return join()
end
return result(3, 0, 0, true)
