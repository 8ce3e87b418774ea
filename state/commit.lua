-- Store the scores computed from the state `apply.lua` returned, bump versions, index decay.
--
-- KEYS[1]  the partition's watermark key (routing: every key below shares its hash tag).
-- ARGV[1]  JSON: {base, first_day, today, history_days,
--                 users: [{u: user, s: "score|brand|people|insights|relationships",
--                          due: day or -1, h: score × 100 + 1}]}
-- Returns  per user {user, version, changed (0/1), previous "s" or false}.
--
-- A user's version rises only when the published string changes, so committing the same scores
-- again (a replay) returns the stored version unchanged.

local cfg = cjson.decode(ARGV[1])
local base = cfg.base
local out = {}
for _, c in ipairs(cfg.users) do
  local ukey = base .. 'u:' .. c.u
  local prev = redis.call('HGET', ukey, 's')
  local version
  local changed = 0
  if prev ~= c.s then
    version = redis.call('HINCRBY', ukey, 'v', 1)
    redis.call('HSET', ukey, 's', c.s)
    changed = 1
  else
    version = tonumber(redis.call('HGET', ukey, 'v') or '0')
  end
  -- drop buckets that left the window
  local fields = redis.call('HKEYS', ukey)
  for _, f in ipairs(fields) do
    local d = tonumber(f)
    if d and d < cfg.first_day then redis.call('HDEL', ukey, f) end
  end
  if c.due >= 0 then
    redis.call('ZADD', base .. 'due', c.due, c.u)
  else
    redis.call('ZREM', base .. 'due', c.u)
  end
  if changed == 1 then
    -- history: an append-only log of (day mod 65536, score × 100 + 1) records, one per day
    -- the score changed (today's record is overwritten), trimmed to the last history_days
    -- records, which cover at least the last history_days days
    local hkey = base .. 'h:' .. c.u
    local day16 = cfg.today % 65536
    local rec = struct.pack('>HH', day16, c.h)
    local len = redis.call('STRLEN', hkey)
    if len >= 4 and struct.unpack('>H', redis.call('GETRANGE', hkey, len - 4, len - 3)) == day16 then
      redis.call('SETRANGE', hkey, len - 4, rec)
    else
      len = redis.call('APPEND', hkey, rec)
      local keep = cfg.history_days * 4
      if len > keep then
        redis.call('SET', hkey, redis.call('GETRANGE', hkey, len - keep, len - 1))
      end
    end
  end
  out[#out + 1] = {c.u, version, changed, prev or false}
end
return out
