-- Shared prelude of every lock script. Prepended to each script by the Go
-- side, so that every script sees the same keys, clock and helpers.
--
-- KEYS: 1 owner (hash), 2 line (list of tickets), 3 waiters (hash ticket ->
--       cjson info), 4 used (zset ticket -> until when it stays spent, ms)
-- All four share the resource's hash tag, so one resource is one slot.
-- The line and the waiters hash always hold the same tickets: every script
-- adds and removes a ticket in both.
local K_OWNER, K_LINE, K_WAITERS, K_USED = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- Server time: leases are judged by Redis's clock only, never a client's.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local NOW_US = tonumber(T[1]) * 1000000 + tonumber(T[2])

-- Counts of what this call found dead, reported to the caller's metrics.
local EXP_WAITERS, EXP_HOLDERS, EXP_TICKETS = 0, 0, 0

-- A waiter's info: h holder, p purpose, j joined (ms), c claimer ('' for a
-- reservation nobody has claimed yet), ch its process's wake channel, ttl,
-- m mode, r 1 for a reservation, claim (a reservation's lease once at the
-- front), x lease expiry (ms, server clock; renewed by every acquire the
-- waiter runs), n the number the waiter gave the acquire run that set x
-- (its wake-up names it, see wake).
local function winfo(ticket)
  local raw = redis.call('HGET', K_WAITERS, ticket)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function alive(info)
  return info ~= nil and tonumber(info.x or 0) > NOW
end

-- count_dead records a waiter found past its lease: an unclaimed
-- reservation is an expired ticket, anything else a dead waiter.
local function count_dead(info)
  if info and info.r == 1 and (info.c == nil or info.c == '') then
    EXP_TICKETS = EXP_TICKETS + 1
  else
    EXP_WAITERS = EXP_WAITERS + 1
  end
end

local function dequeue(ticket)
  redis.call('LREM', K_LINE, 1, ticket)
  redis.call('HDEL', K_WAITERS, ticket)
end

-- The owner hash is never deleted: a free lock is one whose ticket (t) is
-- empty, and its token field (k) keeps the last fencing token granted for
-- the resource, for as long as Redis keeps its data.
--
-- OWNER is this call's view of the owner hash: read once, by evict (every
-- mutating script starts with it), and kept in step with every change the
-- script makes, so no script reads the owner twice. nil when nobody owns.
-- Fields: t ticket, c claimer ('' while unclaimed), k token, e lease expiry
-- (ms, server clock), h holder, p purpose.
local OWNER
-- LAST_TOKEN is the last fencing token granted, when this call knows it.
local LAST_TOKEN

local function load_owner()
  local o = redis.call('HMGET', K_OWNER, 't', 'c', 'k', 'e', 'h', 'p')
  LAST_TOKEN = tonumber(o[3] or '0')
  if not o[1] or o[1] == '' then
    OWNER = nil
    return
  end
  OWNER = {t = o[1], c = o[2] or '', k = LAST_TOKEN, e = tonumber(o[4] or 0), h = o[5] or '', p = o[6] or ''}
end

local function drop_owner()
  redis.call('HSET', K_OWNER, 't', '', 'c', '')
  OWNER = nil
end

-- Evict the owner if its lease has run out. Dead waiters need no sweep:
-- one in the middle of the line blocks nobody, and each is dropped, once,
-- when it reaches the front (promote_head, live_head) — O(1) per dead
-- waiter, never O(line) per grant.
local function evict()
  load_owner()
  if OWNER and OWNER.e <= NOW then
    if OWNER.c == '' then
      EXP_TICKETS = EXP_TICKETS + 1
    else
      EXP_HOLDERS = EXP_HOLDERS + 1
    end
    drop_owner()
  end
end

-- The next fencing token: strictly above every token granted before (the
-- owner hash keeps the last), also after a restart that lost it, because
-- it never falls below the server clock in microseconds. make_owner
-- stores it.
local function next_token()
  local tok = math.max((LAST_TOKEN or 0) + 1, NOW_US)
  LAST_TOKEN = tok
  return tok
end

-- Tell the process of the waiter granted (info, waiting with ticket) that
-- it holds the lock, through its wake channel: "ticket claimer n token",
-- where n names the waiter's acquire run that set the lease the grant
-- keeps (info.x). The waiter takes the message as its grant only when n is
-- that of a run it sent, no older than the last run it had an answer to,
-- and the lease counted from that run's sending is still good; otherwise
-- (a stale message: the grant lapsed while the waiter could not act) it
-- only runs acquire again. A record without n (written by an older
-- version) gets the ticket alone: a prompt to re-check.
local function wake(info, ticket, tok)
  if not info.ch or info.ch == '' then return end
  if info.n and info.c and info.c ~= '' then
    redis.call('PUBLISH', info.ch, string.format('%s %s %d %d', ticket, info.c, info.n, tok))
  else
    redis.call('PUBLISH', info.ch, ticket)
  end
end

-- Make ticket the owner until expiry (ms, server clock). claimer is '' for
-- a ticket nobody has claimed yet (a handoff or a reservation granted
-- before its claimer arrived).
local function make_owner(ticket, claimer, expiry, holder, purpose, mode)
  local tok = next_token()
  -- Every field is written, so the previous owner's need no clearing.
  redis.call('HSET', K_OWNER, 't', ticket, 'c', claimer, 'k', string.format('%d', tok), 's', NOW,
    'e', expiry, 'h', holder or '', 'p', purpose or '', 'm', mode or '')
  OWNER = {t = ticket, c = claimer, k = tok, e = expiry, h = holder or '', p = purpose or ''}
  return tok
end

-- Pass ownership to the first live waiter, dropping dead ones ahead of it,
-- and wake only that waiter, through the channel of its process. A claimed
-- waiter keeps the lease it already has (it counts its lease from the
-- acquire that renewed it last, so a waiter that died just before its turn
-- blocks nobody past that lease); an unclaimed reservation holds the lock
-- for its claim timeout. Returns the ticket and token granted, or nil when
-- nobody live waits.
local function promote_head()
  while true do
    local head = redis.call('LPOP', K_LINE)
    if not head then return nil end
    local info = winfo(head)
    redis.call('HDEL', K_WAITERS, head)
    if alive(info) then
      local claimer = info.c or ''
      local expiry = tonumber(info.x)
      if claimer == '' then expiry = NOW + tonumber(info.claim or 1000) end
      local tok = make_owner(head, claimer, expiry, info.h, info.p, info.m)
      wake(info, head, tok)
      return head, tok
    end
    count_dead(info)
  end
end

-- live_head drops dead waiters from the front of the line and returns the
-- first live one and its info, leaving it in line (nil when none).
local function live_head()
  while true do
    local head = redis.call('LINDEX', K_LINE, 0)
    if not head then return nil end
    local info = winfo(head)
    if alive(info) then return head, info end
    redis.call('LPOP', K_LINE)
    redis.call('HDEL', K_WAITERS, head)
    count_dead(info)
  end
end

-- Keep the line's keys alive at least grace/2 past every waiter's lease
-- (and at most grace past the longest), so that a fleet that died entirely
-- leaves nothing behind. Called where a lease ending at expiry is added or
-- extended; removing waiters never needs it. The keys are only extended
-- when they would otherwise die less than grace/2 after this lease, so most
-- calls cost one PTTL; an extension never shortens them. The two keys hold
-- the same tickets, so they are created and emptied together and one PTTL
-- speaks for both.
local function touch(expiry, grace)
  local need = expiry - NOW + grace
  if redis.call('PTTL', K_WAITERS) < need - math.floor(grace / 2) then
    redis.call('PEXPIRE', K_WAITERS, need)
    redis.call('PEXPIRE', K_LINE, need)
  end
end

local function owner_view()
  if not OWNER then return '', '', 0 end
  return OWNER.h, OWNER.p, OWNER.e - NOW
end

-- result is every mutating script's reply. Only acquire needs the owner's
-- view (who holds it, how long its lease has left); the others skip it.
local function result(status, value, extra, with_owner)
  local h, p, left = '', '', 0
  if with_owner then h, p, left = owner_view() end
  return {status, value, h, p, left, EXP_WAITERS, EXP_HOLDERS, EXP_TICKETS, extra or 0}
end

-- spend remembers ticket as spent for mem ms (0: not at all): its claimer
-- released the lock or handed it on, so claiming it again (the same task
-- delivered again) is refused. Only tickets a caller named are spent (a
-- fresh Acquire's own ticket is never presented again). Tickets past their
-- time are dropped here, so the set holds only those spent within the
-- window, and the key itself ends with the last of them.
local function spend(ticket, mem)
  if mem <= 0 then return end
  redis.call('ZREMRANGEBYSCORE', K_USED, '-inf', NOW)
  redis.call('ZADD', K_USED, NOW + mem, ticket)
  if redis.call('PTTL', K_USED) < mem then
    redis.call('PEXPIRE', K_USED, mem)
  end
end

-- spent reports whether ticket was spent and is still remembered.
local function spent(ticket)
  local until_ms = redis.call('ZSCORE', K_USED, ticket)
  return until_ms and tonumber(until_ms) > NOW
end

-- is_owner reports whether ticket, claimed by claimer, owns the lock.
local function is_owner(ticket, claimer)
  return OWNER ~= nil and OWNER.t == ticket and OWNER.c == claimer
end
