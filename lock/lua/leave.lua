-- leave(ticket, claimer)
-- A waiter gives up (its context ended). If it was granted meanwhile, it
-- releases, passing the lock on as release does; otherwise it leaves the line.
-- Returns result(status, value, extra) as release does; 2 when it only left
-- the line, 5 when it was neither owner nor in line.
local ticket, claimer = ARGV[1], ARGV[2]

evict()

if is_owner(ticket, claimer) then
  local nxt, tok = promote_head()
  if nxt then return result(6, tok, 1) end
  drop_owner()
  return result(6, 0, 0)
end
local info = winfo(ticket)
if info and (info.c == claimer or info.c == nil or info.c == '') then
  dequeue(ticket)
  return result(2, 0)
end
return result(5, 0)
