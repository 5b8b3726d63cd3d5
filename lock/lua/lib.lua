-- Shared prelude of every lock script. Prepended to each script by the Go
-- side, so that every script sees the same keys, clock and helpers.
--
-- KEYS: 1 owner (hash), 2 line (list), 3 leases (zset ticket -> expiry ms),
--       4 waiters (hash ticket -> cjson info), 5 fence (counter)
-- All five share the resource's hash tag, so one resource is one slot.
local K_OWNER, K_LINE, K_LEASES, K_WAITERS, K_FENCE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

-- Server time: leases are judged by Redis's clock only, never a client's.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local NOW_US = tonumber(T[1]) * 1000000 + tonumber(T[2])

-- Counts of what this call found dead, reported to the caller's metrics.
local EXP_WAITERS, EXP_HOLDERS, EXP_TICKETS = 0, 0, 0

local function winfo(ticket)
  local raw = redis.call('HGET', K_WAITERS, ticket)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function dequeue(ticket)
  redis.call('LREM', K_LINE, 1, ticket)
  redis.call('ZREM', K_LEASES, ticket)
  redis.call('HDEL', K_WAITERS, ticket)
end

-- Evict every waiter whose lease has expired, wherever it stands in the
-- line (one LREM per dead waiter, paid once), and an owner past its lease.
local function evict()
  local dead = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', NOW)
  for _, t in ipairs(dead) do
    local info = winfo(t)
    if info and info.r == 1 and (info.c == nil or info.c == '') then
      EXP_TICKETS = EXP_TICKETS + 1
    else
      EXP_WAITERS = EXP_WAITERS + 1
    end
    dequeue(t)
  end
  local exp = redis.call('HGET', K_OWNER, 'e')
  if exp and tonumber(exp) <= NOW then
    if redis.call('HGET', K_OWNER, 'c') == '' then
      EXP_TICKETS = EXP_TICKETS + 1
    else
      EXP_HOLDERS = EXP_HOLDERS + 1
    end
    redis.call('DEL', K_OWNER)
  end
end

-- The next fencing token: strictly above every token granted before, also
-- after a restart that lost the counter, because it never falls below the
-- server clock in microseconds.
local function next_token()
  local cur = tonumber(redis.call('GET', K_FENCE) or '0')
  if cur + 1 >= NOW_US then
    return redis.call('INCR', K_FENCE)
  end
  redis.call('SET', K_FENCE, string.format('%d', NOW_US))
  return NOW_US
end

-- Tell the process waiting for ticket (through its wake channel ch) that
-- it was granted the lock with token tok. The token is formatted as an
-- integer: Lua's own number-to-string conversion prints 16-digit tokens in
-- %.14g notation, which the waiter could not parse (it would then spend a
-- round trip re-checking instead of holding the lock at once).
local function wake(ch, ticket, tok)
  if ch and ch ~= '' then
    redis.call('PUBLISH', ch, ticket .. ' ' .. string.format('%d', tok))
  end
end

-- Make ticket the owner. claimer is '' for a ticket nobody has claimed yet
-- (a handoff or a reservation granted before its claimer arrived).
local function make_owner(ticket, claimer, lease, holder, purpose, mode, grace)
  local tok = next_token()
  -- Every field is written, so the previous owner's need no DEL.
  redis.call('HSET', K_OWNER, 't', ticket, 'c', claimer, 'k', tok, 's', NOW,
    'e', NOW + lease, 'h', holder or '', 'p', purpose or '', 'm', mode or '')
  redis.call('PEXPIRE', K_OWNER, lease + grace)
  return tok
end

-- Pass ownership to the head of the line (live: evict ran first) and wake
-- only that waiter, through the channel of the process waiting for it.
-- Returns the ticket and token granted, or nil when nobody waits.
local function promote_head(grace)
  local head = redis.call('LPOP', K_LINE)
  if not head then return nil end
  local info = winfo(head) or {}
  redis.call('ZREM', K_LEASES, head)
  redis.call('HDEL', K_WAITERS, head)
  local claimer = info.c or ''
  local lease = tonumber(info.ttl or 0)
  if claimer == '' then lease = tonumber(info.claim or 0) end
  if lease <= 0 then lease = 1000 end
  local tok = make_owner(head, claimer, lease, info.h, info.p, info.m, grace)
  wake(info.ch, head, tok)
  return head, tok
end

-- Keep the line's keys alive exactly as long as their longest lease (plus
-- grace), so that a fleet that died entirely leaves nothing behind. Called
-- where a lease is added or extended; removing waiters never needs it.
local function touch(grace)
  local last = redis.call('ZRANGE', K_LEASES, -1, -1, 'WITHSCORES')
  if last[2] then
    local ms = tonumber(last[2]) - NOW + grace
    redis.call('PEXPIRE', K_LEASES, ms)
    redis.call('PEXPIRE', K_WAITERS, ms)
    redis.call('PEXPIRE', K_LINE, ms)
  end
end

local function owner_view()
  local o = redis.call('HMGET', K_OWNER, 'h', 'p', 'e')
  local left = 0
  if o[3] then left = tonumber(o[3]) - NOW end
  return o[1] or '', o[2] or '', left
end

-- result is every mutating script's reply. Only acquire needs the owner's
-- view (who holds it, how long its lease has left); the others skip it.
local function result(status, value, extra, with_owner)
  local h, p, left = '', '', 0
  if with_owner then h, p, left = owner_view() end
  return {status, value, h, p, left, EXP_WAITERS, EXP_HOLDERS, EXP_TICKETS, extra or 0}
end

-- is_owner reports whether ticket, claimed by claimer, owns the lock.
local function is_owner(ticket, claimer)
  local o = redis.call('HMGET', K_OWNER, 't', 'c')
  return o[1] == ticket and o[2] == claimer
end
