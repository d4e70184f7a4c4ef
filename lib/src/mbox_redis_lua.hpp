// SPDX-License-Identifier: MIT
// The Lua scripts of the Redis mailbox backend (see the layout comment at the
// top of mbox_redis.cpp). Every change of a mailbox's state happens inside one
// of these, so that each is atomic: a client killed between two calls leaves
// either nothing or a whole step behind.
#pragma once

namespace ipc::mbox::redis::lua {

// Helpers of every script (the fast-path scripts carry only these). KEYS[1]
// is always the stream; the other keys of the mailbox are named from it.
inline constexpr const char* prelude_core = R"lua(
-- Globals as locals: a script reads upvalues faster than the global table.
local redis, string, table, tonumber, ipairs, pairs, unpack, type = redis, string, table, tonumber, ipairs, pairs, unpack, type
local KEYS, ARGV = KEYS, ARGV
local function num(s) return tonumber(s) or 0 end
local function str(n) return string.format('%d', n) end
local function idparts(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(a), tonumber(b)
end
local function idlt(a, b)
  local a1, a2 = idparts(a)
  local b1, b2 = idparts(b)
  return a1 < b1 or (a1 == b1 and a2 < b2)
end
local function idnext(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  return a .. '-' .. string.format('%d', tonumber(b) + 1)
end
local function fmap(fields)
  local m = {}
  for i = 1, #fields, 2 do m[fields[i]] = fields[i + 1] end
  return m
end
local function gkey(stream, g) return stream .. ':g:' .. g end
local function groups(stream, infos)
  local out = {}
  if not infos then
    if redis.call('EXISTS', stream) == 0 then return out end
    infos = redis.call('XINFO', 'GROUPS', stream)
  end
  for _, g in ipairs(infos) do
    local m = fmap(g)
    -- a name starting with a NUL byte: the fast path's reader (fast_pre), left over by a failed step
    if string.byte(m['name'], 1) ~= 0 then
      out[#out + 1] = {name = m['name'], last = m['last-delivered-id'], pending = m['pending']}
    end
  end
  return out
end
local function last_id(stream)
  local r = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if r[1] then return r[1][1] end
  return '0-0'
end
local function wake(key) redis.call('XADD', key, 'MAXLEN', 1, '*', 'w', '1') end

-- Retention: frees every entry that each group has passed (taken, or acked
-- when it was delivered with --ack; held entries stay). Without groups
-- nothing is freed here: entries wait for a group up to the capacity.
-- Wakes blocked senders when it freed something. known: meta's bytes_exact
-- and full as the caller read them ({exact = v, full = v}), to skip writes
-- that change nothing; nil: write them.
local function retain(stream, meta, free, gs, known)
  gs = gs or groups(stream)
  if #gs == 0 then return 0 end
  local floor = nil
  for _, g in ipairs(gs) do
    local cand
    if g.pending > 0 then
      cand = redis.call('XPENDING', stream, g.name)[2]
    else
      cand = idnext(g.last)
    end
    if floor == nil or idlt(cand, floor) then floor = cand end
  end
  local freed = redis.call('XTRIM', stream, 'MINID', floor)
  if freed == 0 then return 0 end
  redis.call('XTRIM', stream .. ':to', 'MINID', floor)
  -- bytes is now an upper bound: recount() makes it exact when it matters
  if not known or known.exact ~= '0' then redis.call('HSET', meta, 'bytes_exact', '0') end
  if not known or known.full then
    if redis.call('HDEL', meta, 'full') > 0 then wake(free) end
  end
  return freed
end
local function forget_consumer(stream, g, c)
  if string.sub(c, 1, 1) ~= '~' then return end
  if #redis.call('XPENDING', stream, g, '-', '+', 1, c) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', stream, g, c)
    redis.call('HDEL', gkey(stream, g), 'lease:' .. c)
  end
end
-- The addressee index (STREAM:to) lists every entry with a 'to' field. The
-- send script adds its own; entries added by other means (redis-cli XADD,
-- dead letters) after meta's lastid are found here and indexed.
local function index_new(stream, meta)
  local lastid = redis.call('HGET', meta, 'lastid') or '0-0'
  local top = last_id(stream)
  if top == '0-0' or not idlt(lastid, top) then return end
  local from = '(' .. lastid
  local done = last_id(stream .. ':to')  -- indexed already (a script that failed half-way)
  while true do
    local batch = redis.call('XRANGE', stream, from, top, 'COUNT', 1000)
    for _, e in ipairs(batch) do
      local m = fmap(e[2])
      if m.to and m.to ~= '' and idlt(done, e[1]) then
        redis.call('XADD', stream .. ':to', e[1], 'to', m.to, 'seq', m.seq or '0')
      end
    end
    if #batch < 1000 then break end
    from = '(' .. batch[#batch][1]
  end
  redis.call('HSET', meta, 'lastid', top)
end
)lua";

// Helpers of the scripts that append or look up entries.
inline constexpr const char* prelude = R"lua(
-- What an entry costs against max_bytes: every field name and value. Entries
-- without a seq field (added by hand) are not charged.
local function esize(fields)
  local n = 0
  for i = 1, #fields do n = n + #fields[i] end
  return n
end
local function charged(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'seq' then return esize(fields) end
  end
  return 0
end
-- The exact charged bytes of a stream (one pass over it).
local function count_bytes(stream)
  local bytes, from = 0, '-'
  while true do
    local batch = redis.call('XRANGE', stream, from, '+', 'COUNT', 1000)
    for _, e in ipairs(batch) do bytes = bytes + charged(e[2]) end
    if #batch < 1000 then break end
    from = '(' .. batch[#batch][1]
  end
  return bytes
end
-- A mailbox being appended to.
local function load_box(stream, meta)
  local v = redis.call('HMGET', meta, 'max_msgs', 'max_bytes', 'max_msg_size', 'overflow', 'bytes', 'seq', 'bytes_exact')
  if not v[1] then return nil end
  return {stream = stream, meta = meta, max_msgs = num(v[1]), max_bytes = num(v[2]),
          max_msg_size = num(v[3]), overflow = v[4] or 'block', bytes = num(v[5]), seq = num(v[6]),
          exact = v[7] ~= '0', len = redis.call('XLEN', stream), sent = 0, dropped = 0}
end
-- Retention frees entries without reading them, so the bytes counter may be
-- high: it is recounted (once) before it is allowed to refuse a message.
local function fits(b, size)
  if b.len >= b.max_msgs then return false end
  if b.bytes + size <= b.max_bytes then return true end
  if not b.exact then
    b.bytes = count_bytes(b.stream)
    b.exact = true
    redis.call('HSET', b.meta, 'bytes_exact', '1')
  end
  return b.bytes + size <= b.max_bytes
end
-- Evicts the oldest entries until size fits. A group that had not reached an
-- evicted entry counts it as dropped; one that had it pending loses it.
local function drop_oldest(b, size)
  local gs, last = nil, nil
  while b.len > 0 and not fits(b, size) do
    local batch = redis.call('XRANGE', b.stream, last and ('(' .. last) or '-', '+', 'COUNT', 100)
    if #batch == 0 then break end
    for _, e in ipairs(batch) do
      if fits(b, size) then break end
      if gs == nil then gs = groups(b.stream) end
      for _, g in ipairs(gs) do
        if idlt(g.last, e[1]) then
          redis.call('HINCRBY', gkey(b.stream, g.name), 'dropped', 1)
        elseif g.pending > 0 then
          if redis.call('XACK', b.stream, g.name, e[1]) > 0 then
            redis.call('HINCRBY', gkey(b.stream, g.name), 'lost', 1)
          end
        end
      end
      b.len = b.len - 1
      b.bytes = b.bytes - charged(e[2])
      if b.bytes < 0 then b.bytes = 0 end
      b.dropped = b.dropped + 1
      last = e[1]
    end
  end
  if last then
    redis.call('XTRIM', b.stream, 'MINID', idnext(last))
    redis.call('XTRIM', b.stream .. ':to', 'MINID', idnext(last))
  end
end
-- fields: everything but seq. Returns the seq.
local function append(b, fields)
  b.seq = b.seq + 1
  local s = str(b.seq)
  redis.call('XADD', b.stream, '*', 'seq', s, unpack(fields))
  b.len = b.len + 1
  b.bytes = b.bytes + esize(fields) + 3 + #s
  b.sent = b.sent + 1
  return b.seq
end
local function save_box(b)
  redis.call('HSET', b.meta, 'seq', str(b.seq), 'bytes', str(b.bytes))
  if b.sent > 0 then redis.call('HINCRBY', b.meta, 'sent', b.sent) end
  if b.dropped > 0 then redis.call('HINCRBY', b.meta, 'dropped', b.dropped) end
  if b.sent + b.dropped > 0 then redis.call('HINCRBY', b.meta, 'changes', 1) end
end
-- The stream id of a seq pending in a group: the hint when it holds that
-- seq, else a search of the group's pending entries.
local function find_pending(stream, g, seq, hint)
  if hint ~= '' then
    local r = redis.call('XRANGE', stream, hint, hint)
    if r[1] and (fmap(r[1][2]).seq or '0') == seq then return hint end
  end
  local from = '-'
  for _ = 1, 100 do
    local p = redis.call('XPENDING', stream, g, from, '+', 100)
    for _, e in ipairs(p) do
      local r = redis.call('XRANGE', stream, e[1], e[1])
      if r[1] and (fmap(r[1][2]).seq or '0') == seq then return e[1] end
    end
    if #p < 100 then break end
    from = '(' .. p[#p][1]
  end
  return nil
end
)lua";

// KEYS: stream meta. ARGV: max_msgs max_bytes max_msg_size overflow created uid mode.
// Returns 1 when created, 0 when it existed.
inline constexpr const char* create = R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'version', '1', 'max_msgs', ARGV[1], 'max_bytes', ARGV[2],
           'max_msg_size', ARGV[3], 'overflow', ARGV[4], 'created', ARGV[5], 'uid', ARGV[6],
           'mode', ARGV[7], 'seq', '0', 'bytes', '0', 'sent', '0', 'dropped', '0', 'changes', '0')
return 1
)lua";

// KEYS: stream meta ev free. ARGV: policy ('' = the mailbox's) ts pid uid from n
// layout, then n times: topic to body (layout 't'), or body (layout 'b': no
// topics or addressees; a third of the arguments, which cost the script too).
// Returns {first seq, how many were sent, 'OK' | 'FULL' | 'TOOBIG', free stream id}.
inline constexpr const char* send = R"lua(
local b = load_box(KEYS[1], KEYS[2])
if not b then return redis.error_reply('NOMBOX no such mailbox') end
local policy = ARGV[1]
if policy == '' then policy = b.overflow end
local n, bodies = tonumber(ARGV[6]), ARGV[7] == 'b'
local function msg(i)
  if bodies then return '', '', ARGV[8 + i] end
  return ARGV[8 + 3 * i], ARGV[9 + 3 * i], ARGV[10 + 3 * i]
end
local first, status = b.seq + 1, 'OK'
index_new(b.stream, b.meta)
local idx, lastid = b.stream .. ':to', nil
-- One argument list, reused: XADD stream * seq S ts T pid P uid U [from F] [topic T] [to T] body B
local a = {'XADD', b.stream, '*', 'seq', '', 'ts', ARGV[2], 'pid', ARGV[3], 'uid', ARGV[4]}
if ARGV[5] ~= '' then a[#a + 1] = 'from'; a[#a + 1] = ARGV[5] end
local base, fixed = #a, 0
for j = 4, base do fixed = fixed + #a[j] end  -- charged bytes of the fixed part (seq value added below)
-- The common case first, with as little Lua per message as can be: bodies
-- only, and room for the whole batch (counted with the longest seq).
local total, seqlen = 0, #str(b.seq + n)
if bodies then
  for i = 0, n - 1 do
    local body = ARGV[8 + i]
    if #body > b.max_msg_size then total = nil; break end
    total = total + fixed + 4 + seqlen + #body
  end
end
local done = 0
if bodies and total and b.len + n <= b.max_msgs and b.bytes + total <= b.max_bytes then
  local stream, s, added = b.stream, b.seq, 0
  local ts, pid, uid, as = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local call, fmt = redis.call, string.format
  for i = 0, n - 1 do
    s = s + 1
    local sq, body = fmt('%d', s), ARGV[8 + i]
    if as == '' then
      lastid = call('XADD', stream, '*', 'seq', sq, 'ts', ts, 'pid', pid, 'uid', uid, 'body', body)
    else
      lastid = call('XADD', stream, '*', 'seq', sq, 'ts', ts, 'pid', pid, 'uid', uid, 'from', as, 'body', body)
    end
    added = added + fixed + 4 + #sq + #body
  end
  b.seq, b.len, b.bytes, b.sent = s, b.len + n, b.bytes + added, n
  done = n
end
for i = done, n - 1 do
  local topic, to, body = msg(i)
  local k, size = base, fixed + 4 + #body
  if topic ~= '' then a[k + 1] = 'topic'; a[k + 2] = topic; k = k + 2; size = size + 5 + #topic end
  if to ~= '' then a[k + 1] = 'to'; a[k + 2] = to; k = k + 2; size = size + 2 + #to end
  a[k + 1] = 'body'; a[k + 2] = body; k = k + 2
  local sq = str(b.seq + 1)
  size = size + #sq
  if size > b.max_bytes or #body > b.max_msg_size then status = 'TOOBIG'; break end
  if not fits(b, size) then
    if policy == 'drop-oldest' then drop_oldest(b, size) end
    if not fits(b, size) then status = 'FULL'; break end
  end
  a[5] = sq
  lastid = redis.call(unpack(a, 1, k))
  if to ~= '' then redis.call('XADD', idx, lastid, 'to', to, 'seq', sq) end
  b.seq = b.seq + 1
  b.len = b.len + 1
  b.bytes = b.bytes + size
  b.sent = b.sent + 1
end
save_box(b)
if lastid then redis.call('HSET', b.meta, 'lastid', lastid) end
local top = ''
if status == 'FULL' then
  redis.call('HSET', KEYS[2], 'full', '1')
  top = last_id(KEYS[4])
end
return {str(first), str(b.sent), status, top}
)lua";

// KEYS: stream meta ev free dead-stream dead-meta.
// ARGV: 1 group, 2 consumer, 3 name (--as), 4 ack (0|1), 5 lease ms,
// 6 max deliveries, 7 count, 8 topic glob, 9 topic as a Lua pattern, 10 from,
// 11 new_only (0|1), 12..17 a new dead-letter mailbox's max_msgs max_bytes
// max_msg_size created uid mode.
// Returns {'OK', stream top id, ev top id, {{id, deliveries, skipped, fields}...}}
// or {'SUBSCRIPTION', topic, from} when the group subscribes to something else.
inline constexpr const char* recv = R"lua(
local stream, meta, ev, free = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local g, me, name, ack = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local lease, maxdel, want = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local topic, pat, from = ARGV[8], ARGV[9], ARGV[10]
if redis.call('EXISTS', meta) == 0 then return redis.error_reply('NOMBOX no such mailbox') end
local gk = gkey(stream, g)
local gs = redis.call('HMGET', gk, 'topic', 'from', 'pos', 'skip')
local pos
if not gs[1] then
  local seq = num(redis.call('HGET', meta, 'seq'))
  local start = '0'
  pos = seq
  if ARGV[11] == '1' then
    start = '$'
  else
    for _, e in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', 16)) do
      local s = num(fmap(e[2]).seq)
      if s > 0 then pos = s - 1; break end
    end
  end
  redis.pcall('XGROUP', 'CREATE', stream, g, start, 'MKSTREAM')
  redis.call('HSET', gk, 'topic', topic, 'from', from, 'pos', str(pos), 'skip', '')
  gs[4] = ''
elseif gs[1] ~= topic or gs[2] ~= from then
  return {'SUBSCRIPTION', gs[1], gs[2]}
else
  pos = num(gs[3])
end

local skips = {}
for a, b, r in string.gmatch(gs[4] or '', '(%d+) (%d+) (%a+);') do skips[#skips + 1] = {tonumber(a), tonumber(b), r} end
local function skip(a, b, reason)
  if a == 0 or b < a then return end
  local l = skips[#skips]
  if l and l[3] == reason and l[2] + 1 == a then l[2] = b else skips[#skips + 1] = {a, b, reason} end
end
local function take_skips()
  if #skips == 0 then return '' end
  local parts = {}
  for _, s in ipairs(skips) do parts[#parts + 1] = str(s[1]) .. ' ' .. str(s[2]) .. ' ' .. s[3] .. ';' end
  skips = {}
  return table.concat(parts)
end
local out = {}
local c = {delivered = 0, redelivered = 0, filtered = 0, dead_lettered = 0}
local freeing, handed, changed = false, false, false
local function deliver(e, count)
  out[#out + 1] = {e[1], count == 1 and '1' or str(count), take_skips(), e[2]}
  c.delivered = c.delivered + 1
  changed = true
end

-- 1. Messages held for this receiver by name (addressed to it, passed by others).
if name ~= '' then
  local p = redis.call('XPENDING', stream, g, '-', '+', 1000, name)
  for _, e in ipairs(p) do
    if #out >= want then break end
    if e[4] == 0 then
      local r = redis.call('XRANGE', stream, e[1], e[1])
      if not r[1] then
        redis.call('XACK', stream, g, e[1]); freeing = true
      else
        if ack then
          redis.call('XCLAIM', stream, g, name, 0, e[1], 'RETRYCOUNT', 1, 'JUSTID')
        else
          redis.call('XACK', stream, g, e[1]); freeing = true
        end
        deliver(r[1], 1)
      end
    end
  end
end

-- 2. Expired leases: delivered again, or dead-lettered after max deliveries.
local function dead_letter(e)
  local dls, dlm = KEYS[5], KEYS[6]
  if redis.call('EXISTS', dlm) == 0 then
    redis.call('HSET', dlm, 'version', '1', 'max_msgs', ARGV[12], 'max_bytes', ARGV[13],
               'max_msg_size', ARGV[14], 'overflow', 'block', 'created', ARGV[15], 'uid', ARGV[16],
               'mode', ARGV[17], 'seq', '0', 'bytes', '0', 'sent', '0', 'dropped', '0', 'changes', '0')
  end
  local b = load_box(dls, dlm)
  local f, origin = {}, '0'
  for i = 1, #e[2], 2 do
    if e[2][i] == 'seq' then origin = e[2][i + 1]
    elseif e[2][i] ~= 'origin_seq' then f[#f + 1] = e[2][i]; f[#f + 1] = e[2][i + 1] end
  end
  if #f >= 2 then
    table.insert(f, #f - 1, 'origin_seq')
    table.insert(f, #f - 1, origin)
  else
    f[#f + 1] = 'origin_seq'; f[#f + 1] = origin
  end
  local size = esize(f) + 3 + #str(b.seq + 1)
  if not fits(b, size) and b.overflow == 'drop-oldest' then drop_oldest(b, size) end
  if not fits(b, size) then return false end
  append(b, f)
  save_box(b)
  return true
end
local lost = {}
if #out < want and redis.call('XPENDING', stream, g)[1] > 0 then
  local cursor = '-'
  for _ = 1, 10 do
    local p = redis.call('XPENDING', stream, g, 'IDLE', lease, cursor, '+', 100)
    for _, e in ipairs(p) do
      if #out >= want then break end
      local id, owner, idle, cnt = e[1], e[2], e[3], e[4]
      local olease = tonumber(redis.call('HGET', gk, 'lease:' .. owner) or '') or lease
      if cnt > 0 and idle >= olease then
        local r = redis.call('XRANGE', stream, id, id)
        if not r[1] then
          redis.call('XACK', stream, g, id); freeing = true; lost[owner] = true
        else
          local to = fmap(r[1][2]).to or ''
          if to == '' or to == name then
            if maxdel > 0 and cnt >= maxdel then
              if dead_letter(r[1]) then
                redis.call('XACK', stream, g, id)
                c.dead_lettered = c.dead_lettered + 1
                freeing = true; changed = true; lost[owner] = true
              end
            else
              redis.call('XCLAIM', stream, g, me, 0, id, 'RETRYCOUNT', cnt + 1, 'JUSTID')
              if not ack then redis.call('XACK', stream, g, id); freeing = true end
              if owner ~= me then lost[owner] = true end
              deliver(r[1], cnt + 1)
              c.redelivered = c.redelivered + 1
            end
          end
        end
      end
      cursor = '(' .. id
    end
    if #p < 100 or #out >= want then break end
  end
end

-- 3. New messages, through the group's subscription and addressees.
-- Without --ack, NOACK: what is read is taken, and nothing enters the
-- pending list (a message passed to its addressee is put there with FORCE).
local examined, unacked = 0, {}
while #out < want and examined < 1000 do
  local cmd = {'XREADGROUP', 'GROUP', g, me, 'COUNT', want - #out, 'STREAMS', stream, '>'}
  if not ack then table.insert(cmd, 7, 'NOACK') end
  local r = redis.pcall(unpack(cmd))
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'NOGROUP') then return r end
    redis.call('XGROUP', 'CREATE', stream, g, '0', 'MKSTREAM')  -- destroyed by hand: start again
    r = redis.call(unpack(cmd))
  end
  if not r or not r[1] or #r[1][2] == 0 then break end
  if not ack then freeing = true end
  for _, e in ipairs(r[1][2]) do
    examined = examined + 1
    local fs, s, etopic, efrom, to = e[2], 0, '', '', ''
    for i = 1, #fs, 2 do
      local k = fs[i]
      if k == 'seq' then s = num(fs[i + 1])
      elseif k == 'topic' then etopic = fs[i + 1]
      elseif k == 'from' then efrom = fs[i + 1]
      elseif k == 'to' then to = fs[i + 1] end
    end
    if s > 0 then
      if s > pos + 1 then skip(pos + 1, s - 1, 'dropped') end
      if s > pos then pos = s end
    end
    if (pat ~= '' and not string.find(etopic, pat)) or (from ~= '' and efrom ~= from) then
      if ack then unacked[#unacked + 1] = e[1] end
      c.filtered = c.filtered + 1
      skip(s, s, 'filtered')
      freeing = true; changed = true
    elseif to ~= '' and to ~= name then
      redis.call('XCLAIM', stream, g, to, 0, e[1], 'RETRYCOUNT', 0, 'FORCE', 'JUSTID')
      skip(s, s, 'addressed')
      handed = true; changed = true
    else
      deliver(e, 1)
    end
  end
end
if #unacked > 0 then redis.call('XACK', stream, g, unpack(unacked)) end

-- 4. Book-keeping.
-- fast_last: the group may have moved; the fast path reads its position again
redis.call('HSET', gk, 'pos', str(pos), 'skip', take_skips(), 'fast_last', '')
for k, v in pairs(c) do
  if v > 0 then redis.call('HINCRBY', gk, k, v) end
end
if ack then redis.call('HSET', gk, 'lease:' .. me, str(lease)) end
if not ack then forget_consumer(stream, g, me) end
for o, _ in pairs(lost) do forget_consumer(stream, g, o) end
if freeing then retain(stream, meta, free) end
if handed then wake(ev) end
if changed or freeing then redis.call('HINCRBY', meta, 'changes', 1) end
if #out > 0 then return {'OK', '', '', out} end
return {'OK', last_id(stream), last_id(ev), out}
)lua";

// KEYS: stream meta ev free. ARGV: group n, then n times: seq id-hint.
// Returns how many were pending.
inline constexpr const char* ack = R"lua(
local stream, meta, g = KEYS[1], KEYS[2], ARGV[1]
if redis.call('EXISTS', gkey(stream, g)) == 0 or redis.call('EXISTS', stream) == 0 then return 0 end
local n, owners, acked = tonumber(ARGV[2]), {}, 0
for i = 0, n - 1 do
  local id = find_pending(stream, g, ARGV[3 + 2 * i], ARGV[4 + 2 * i])
  if id then
    local p = redis.call('XPENDING', stream, g, id, id, 1)
    if p[1] and p[1][4] > 0 then
      owners[p[1][2]] = true
      acked = acked + redis.call('XACK', stream, g, id)
    end
  end
end
if acked > 0 then
  redis.call('HINCRBY', gkey(stream, g), 'acked', acked)
  for o, _ in pairs(owners) do forget_consumer(stream, g, o) end
  retain(stream, meta, KEYS[4])
  redis.call('HINCRBY', meta, 'changes', 1)
end
return acked
)lua";

// KEYS: stream meta ev free. ARGV: group seq id-hint mode (release|renew) lease-ms.
// Returns 1 when the seq was pending (delivered, not held), else 0.
inline constexpr const char* lease = R"lua(
local stream, meta, g = KEYS[1], KEYS[2], ARGV[1]
if redis.call('EXISTS', gkey(stream, g)) == 0 or redis.call('EXISTS', stream) == 0 then return 0 end
local id = find_pending(stream, g, ARGV[2], ARGV[3])
if not id then return 0 end
local p = redis.call('XPENDING', stream, g, id, id, 1)
if not p[1] or p[1][4] == 0 then return 0 end
if ARGV[4] == 'release' then
  redis.call('XCLAIM', stream, g, p[1][2], 0, id, 'IDLE', 100000000000, 'JUSTID')
  wake(KEYS[3])
  redis.call('HINCRBY', meta, 'changes', 1)
else
  redis.call('XCLAIM', stream, g, p[1][2], 0, id, 'JUSTID')
  redis.call('HSET', gkey(stream, g), 'lease:' .. p[1][2], ARGV[5])
end
return 1
)lua";

// KEYS: stream meta. Returns {meta (HGETALL), length, first seq or '',
// {{name, group hash (HGETALL), last-delivered id, pending, held}...}}.
inline constexpr const char* stat = R"lua(
local stream, meta = KEYS[1], KEYS[2]
if redis.call('EXISTS', meta) == 0 then return redis.error_reply('NOMBOX no such mailbox') end
if redis.call('HGET', meta, 'bytes_exact') == '0' then
  redis.call('HSET', meta, 'bytes', str(count_bytes(stream)), 'bytes_exact', '1')
end
local m = redis.call('HGETALL', meta)
local len = redis.call('XLEN', stream)
local first = ''
for _, e in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', 16)) do
  local s = fmap(e[2]).seq
  if s then first = s; break end
end
local gs = {}
for _, g in ipairs(groups(stream)) do
  local held = 0
  if g.pending > 0 then
    local from = '-'
    for _ = 1, 100 do
      local p = redis.call('XPENDING', stream, g.name, from, '+', 1000)
      for _, e in ipairs(p) do if e[4] == 0 then held = held + 1 end end
      if #p < 1000 then break end
      from = '(' .. p[#p][1]
    end
  end
  gs[#gs + 1] = {g.name, redis.call('HGETALL', gkey(stream, g.name)), g.last, str(g.pending), str(held)}
end
return {m, str(len), first, gs}
)lua";

// KEYS: stream meta ev free. ARGV: group. Returns 1 when it existed.
inline constexpr const char* remove_group = R"lua(
local stream, meta, g = KEYS[1], KEYS[2], ARGV[1]
local existed = redis.call('DEL', gkey(stream, g))
if redis.call('EXISTS', stream) == 1 then
  existed = existed + redis.call('XGROUP', 'DESTROY', stream, g)
  retain(stream, meta, KEYS[4])
end
if existed > 0 then
  redis.call('HINCRBY', meta, 'changes', 1)
  wake(KEYS[3])
  return 1
end
return 0
)lua";

// KEYS: stream meta ev free. Returns 1 when the mailbox existed.
inline constexpr const char* remove = R"lua(
local stream = KEYS[1]
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for _, g in ipairs(groups(stream)) do redis.call('DEL', gkey(stream, g.name)) end
redis.call('DEL', stream, KEYS[2], KEYS[3], KEYS[4], stream .. ':to')
return 1
)lua";

// The take-mode fast path of recv (no --ack, no topic/from subscription), run
// by the client as one transaction, so that new messages reach the receiver
// straight from XREADGROUP and never pass through Lua:
//   MULTI; EVALSHA fast_pre; XREADGROUP GROUP <reader> c COUNT n NOACK STREAMS s >;
//   EVALSHA fast_post; EXEC
// The read goes through a transient consumer group, the reader (fast_group
// below), that fast_pre creates at the group's position and fast_post moves
// the group to and destroys: when fast_pre did not run (a script missing
// after SCRIPT FLUSH) or said no, the XREADGROUP fails with NOGROUP and
// takes nothing. No other client ever sees the reader.
//
// The group's position (last-delivered id and entries-read) is kept in the
// group hash as fast_last and fast_er by fast_post, so that fast_pre need not
// ask XINFO GROUPS for it (a script pays for every reply element it reads);
// everything else that moves the group clears fast_last. fast_post checks
// the recorded position against XINFO GROUPS: when the group was moved by
// other means (XREADGROUP or XGROUP SETID by hand), it discards the read
// ({'SLOW'}: the group itself has not moved, so nothing is lost or taken
// twice) and clears fast_last.

// KEYS: stream. ARGV: group name lease-ms reader.
// Creates the reader when the fast path may deliver: the group exists without
// a subscription, nothing is held for name, and no lease has expired (the
// recv script delivers those first). Returns 1 when it did, else 0.
inline constexpr const char* fast_pre = R"lua(
local stream, g, name, lease, reader = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local gk = gkey(stream, g)
local h = redis.call('HMGET', gk, 'topic', 'from', 'fast_last', 'fast_er')
if h[1] ~= '' or h[2] ~= '' then return 0 end  -- a subscription, or a group the recv script has not set up
local p = redis.pcall('XPENDING', stream, g)
if p.err then return 0 end  -- no stream, or no such group
if p[1] > 0 then
  if name ~= '' then
    for _, e in ipairs(redis.call('XPENDING', stream, g, '-', '+', 1000, name)) do
      if e[4] == 0 then return 0 end
    end
  end
  local cursor = '-'
  for _ = 1, 10 do
    local q = redis.call('XPENDING', stream, g, 'IDLE', lease, cursor, '+', 100)
    for _, e in ipairs(q) do
      if e[4] > 0 then
        local olease = tonumber(redis.call('HGET', gk, 'lease:' .. e[2]) or '') or lease
        if e[3] >= olease then return 0 end
      end
      cursor = '(' .. e[1]
    end
    if #q < 100 then break end
  end
end
local last, er = h[3], h[4] or ''
if not last or last == '' then
  -- not recorded (a new group, or moved by the recv script): ask once
  for _, x in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local m = fmap(x)
    if m['name'] == g then
      last = m['last-delivered-id']
      er = type(m['entries-read']) == 'number' and str(m['entries-read']) or ''
    end
  end
  if not last or last == '' then return 0 end
  redis.call('HSET', gk, 'fast_last', last, 'fast_er', er)
end
local create = {'XGROUP', 'CREATE', stream, reader, last}
if er ~= '' then create[6] = 'ENTRIESREAD'; create[7] = er end
if redis.pcall(unpack(create)).err then
  -- a reader left over by a step that failed half-way
  redis.call('XGROUP', 'DESTROY', stream, reader)
  redis.call(unpack(create))
end
return 1
)lua";

// KEYS: stream meta ev free. ARGV: group name reader.
// After the read: moves the group to where the reader got and destroys it,
// hands the messages addressed to others (found in the addressee index) to
// their addressees, moves pos, keeps the skipped ranges that follow the last
// message for this receiver (or all of them when there is none), counts,
// frees, and returns {'OK', previous pos, previous skip, id of the last entry
// for this receiver or ''}; {'EMPTY', last-delivered id, ev top id} when
// nothing was read; {'SLOW'} when there was no reader, or the group had
// moved since fast_last was recorded (the client then discards the read).
// The client computes the skipped ranges up to that entry by the same rules
// (gaps are 'dropped', entries addressed to others 'addressed').
inline constexpr const char* fast_post = R"lua(
local stream, meta, ev, free = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local g, name, reader = ARGV[1], ARGV[2], ARGV[3]
local infos = redis.pcall('XINFO', 'GROUPS', stream)
if infos.err then return {'SLOW'} end
-- The groups, read by position (the order XINFO GROUPS has in Redis 7.0) or by name.
local gi, ri, gs = nil, nil, {}
for _, x in ipairs(infos) do
  local m
  if x[1] == 'name' and x[5] == 'pending' and x[7] == 'last-delivered-id' and x[9] == 'entries-read' then
    m = {name = x[2], pending = x[6], last = x[8], er = x[10]}
  else
    local f = fmap(x)
    m = {name = f['name'], pending = f['pending'], last = f['last-delivered-id'], er = f['entries-read']}
  end
  if m.name == g then gi = m elseif m.name == reader then ri = m end
  if string.byte(m.name, 1) ~= 0 then gs[#gs + 1] = m end
end
if not ri then return {'SLOW'} end
redis.call('XGROUP', 'DESTROY', stream, reader)
if not gi then return {'SLOW'} end
local gk = gkey(stream, g)
local h = redis.call('HMGET', gk, 'pos', 'skip', 'fast_last', 'delivered')
if h[3] ~= gi.last then
  if h[3] then redis.call('HSET', gk, 'fast_last', '') end
  return {'SLOW'}
end
local lid0, lid = gi.last, ri.last
if lid == lid0 then return {'EMPTY', lid, last_id(ev)} end
local er = ''
if type(ri.er) == 'number' then
  er = str(ri.er)
  redis.call('XGROUP', 'SETID', stream, g, lid, 'ENTRIESREAD', ri.er)
else
  redis.call('XGROUP', 'SETID', stream, g, lid)
end
local mh = redis.call('HMGET', meta, 'lastid', 'bytes_exact', 'full')
-- entries not indexed yet (not added by the send script) among those read
if idlt(mh[1] or '0-0', lid) then index_new(stream, meta) end
local oldpos, oldskip = num(h[1]), h[2] or ''
local from = '(' .. lid0
local other, nother = {}, 0
for _, e in ipairs(redis.call('XRANGE', stream .. ':to', from, lid)) do
  local m = fmap(e[2])
  if m.to ~= name then
    redis.call('XCLAIM', stream, g, m.to, 0, e[1], 'RETRYCOUNT', 0, 'FORCE', 'JUSTID')
    other[e[1]] = true
    nother = nother + 1
  end
end
-- Walk back from the newest entry read to the last one for this receiver.
local boundary, top_seq, tail = nil, nil, {}
local cursor, page = lid, nother + 1
while true do
  local r = redis.call('XREVRANGE', stream, cursor, from, 'COUNT', page)
  for _, e in ipairs(r) do
    local s, fs = 0, e[2]
    for i = 1, #fs, 2 do
      if fs[i] == 'seq' then s = num(fs[i + 1]); break end
    end
    if not top_seq and s > 0 then top_seq = s end
    if not boundary then
      if other[e[1]] then tail[#tail + 1] = s else boundary = e[1] end
    end
    if boundary and top_seq then break end
  end
  if (boundary and top_seq) or #r < page then break end
  cursor = '(' .. r[#r][1]
  page = 64
end
local skips = {}
local function skip(a, b, reason)
  if a == 0 or b < a then return end
  local l = skips[#skips]
  if l and l[3] == reason and l[2] + 1 == a then l[2] = b else skips[#skips + 1] = {a, b, reason} end
end
local pos = oldpos
if not boundary then
  for a, b, r in string.gmatch(oldskip, '(%d+) (%d+) (%a+);') do skips[#skips + 1] = {tonumber(a), tonumber(b), r} end
end
for i = #tail, 1, -1 do
  local s = tail[i]
  if not boundary and s > 0 then
    if s > pos + 1 then skip(pos + 1, s - 1, 'dropped') end
    if s > pos then pos = s end
  end
  skip(s, s, 'addressed')
end
local parts = {}
for _, x in ipairs(skips) do parts[#parts + 1] = str(x[1]) .. ' ' .. str(x[2]) .. ' ' .. x[3] .. ';' end
if top_seq and top_seq > pos then pos = top_seq end
local n
if type(ri.er) == 'number' and type(gi.er) == 'number' then
  n = ri.er - gi.er
else
  n = pos - oldpos
end
n = n - nother
local delivered = num(h[4])
if n > 0 then delivered = delivered + n end
redis.call('HSET', gk, 'pos', str(pos), 'skip', table.concat(parts), 'delivered', str(delivered),
           'fast_last', lid, 'fast_er', er)
-- retention with the groups as they are now: ours moved, the reader gone
gi.last = lid
gi.pending = gi.pending + nother
retain(stream, meta, free, gs, {exact = mh[2], full = mh[3]})
if nother > 0 then wake(ev) end
redis.call('HINCRBY', meta, 'changes', 1)
return {'OK', str(oldpos), oldskip, boundary or ''}
)lua";

} // namespace ipc::mbox::redis::lua
