-- handoff(ticket, claimer, next, claim, purpose, mem)
-- Only the owner may hand off. Ownership passes to the ticket next, which the
-- consumer of a task will present: at once to its claimer if one is already
-- waiting in line with it (and that claimer is woken), otherwise unclaimed
-- with a lease of claim ms. Nobody can take the lock in between. The
-- owner's ticket is spent for mem ms, as at a release.
-- Returns result(status, value): 1 handed off (value: the new token), 5 not held.
local ticket, claimer, nxt = ARGV[1], ARGV[2], ARGV[3]
local claim, purpose, mem = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])

evict()

if not is_owner(ticket, claimer) then
  return result(5, 0)
end
spend(ticket, mem)

local info = winfo(nxt)
if info then
  dequeue(nxt)
  if not alive(info) then
    count_dead(info)
    info = nil
  end
end
local tok
if info and info.c and info.c ~= '' then
  -- Its claimer waits in line: it keeps the lease it has, as at a release.
  tok = make_owner(nxt, info.c, tonumber(info.x), info.h, info.p, info.m)
  wake(info, nxt, tok)
else
  tok = make_owner(nxt, '', NOW + claim, 'ticket', purpose, 'handoff')
end
return result(1, tok)
