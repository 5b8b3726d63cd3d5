-- release(ticket, claimer, mem)
-- Only the owner may release. Ownership passes directly to the live head of
-- the line inside this script (no moment where the lock is free while someone
-- waits), and only that waiter is woken. The ticket is spent for mem ms
-- (0 for a ticket nobody named, which nobody will present again).
-- Returns result(status, value, extra): status 6 released (value: the next
-- owner's token or 0, extra: 1 when ownership passed to a waiter), 5 not held.
local ticket, claimer, mem = ARGV[1], ARGV[2], tonumber(ARGV[3])

evict()

if not is_owner(ticket, claimer) then
  return result(5, 0)
end
spend(ticket, mem)
-- make_owner overwrites every field of the owner hash, so it is marked
-- free only when nobody waits.
local nxt, tok = promote_head()
if nxt then
  return result(6, tok, 1)
end
drop_owner()
return result(6, 0, 0)
