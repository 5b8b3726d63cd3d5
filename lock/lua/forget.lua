-- forget()
-- Deletes the resource's keys when nobody holds the lock or waits for it:
-- an owner whose lease ran out is evicted and dead waiters at the front are
-- dropped first, as every script does. Spent tickets go too: a task of the
-- resource delivered again finds its resource gone. The last fencing token
-- goes with the owner hash; the next grant's token then comes from the
-- server clock alone (next_token), still above every earlier one unless the
-- clock went back.
-- Returns result(status): 6 forgotten (or nothing to forget), 3 held or
-- waited for (nothing deleted).
evict()

if OWNER or live_head() then
  return result(3, 0)
end
redis.call('DEL', K_OWNER, K_LINE, K_WAITERS, K_USED)
return result(6, 0)
