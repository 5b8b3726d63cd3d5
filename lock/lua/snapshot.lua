-- snapshot()
-- Read-only view of one resource: {now, owner fields..., line entries...}.
-- Owner: ticket, claimer, token, since, expiry, holder, purpose, mode.
-- Each line entry: ticket, cjson info, lease expiry. Dead entries that no
-- script has evicted yet are reported with their expiry; the reader drops them.
local o = redis.call('HMGET', K_OWNER, 't', 'c', 'k', 's', 'e', 'h', 'p', 'm')
local out = {NOW, o[1] or '', o[2] or '', o[3] or '', o[4] or '', o[5] or '', o[6] or '', o[7] or '', o[8] or ''}
for _, t in ipairs(redis.call('LRANGE', K_LINE, 0, -1)) do
  local raw = redis.call('HGET', K_WAITERS, t) or '{}'
  table.insert(out, t)
  table.insert(out, raw)
  table.insert(out, string.format('%d', tonumber(cjson.decode(raw).x or 0)))
end
return out
