-- Argo CD health of a gatehouse.dev DataSharingAgreement, from status.phase and the Ready
-- condition. argocd-cm-patch.yaml carries this exact text (tests/argocd_health.rs checks it and
-- runs every phase through gopher-lua, Argo CD's Lua). Argo CD runs argocd-cm scripts without the
-- string library, so only base Lua is used, and every field is read through get() so that a missing
-- or oddly typed field can never make the check fail. Each kind's check is one standalone script,
-- so the helpers are repeated in accessrequest-health.lua.

local function get(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end

-- The message of the first condition of one of the given types, in that order, that has one.
local function condition_message(status, types)
  local conditions = get(status, "conditions")
  for _, wanted in ipairs(types) do
    if type(conditions) == "table" then
      for _, condition in ipairs(conditions) do
        local message = get(condition, "message")
        if get(condition, "type") == wanted and type(message) == "string" and message ~= "" then
          return message
        end
      end
    end
  end
  return nil
end

-- The status ("True", "False" or "Unknown") of the first condition of the given type, if any.
local function condition_status(status, wanted)
  local conditions = get(status, "conditions")
  if type(conditions) == "table" then
    for _, condition in ipairs(conditions) do
      if get(condition, "type") == wanted then
        return get(condition, "status")
      end
    end
  end
  return nil
end

local status = get(obj, "status")
local generation = get(get(obj, "metadata"), "generation")

-- Until the operator has written a status for the current spec, whatever the status says is about
-- an older object (or nothing yet): not a verdict to show, nor one a sync wave may act on. Filing
-- spec.agreement raises the generation, so this also covers the moment after the reference is added.
if type(status) ~= "table" then
  return { status = "Progressing", message = "waiting for the operator: no status yet" }
end
if generation ~= nil and get(status, "observedGeneration") ~= generation then
  local which = ""
  if type(generation) == "number" then
    which = " " .. generation
  end
  return { status = "Progressing", message = "waiting for the operator to observe generation" .. which }
end

local phase = get(status, "phase")
local ready = condition_message(status, { "Ready" })

if phase == "Active" then
  -- Still Active while a re-sync fails (a rotated source could not be copied, a name is taken):
  -- the operator retries, but until then the recipient holds stale data or none.
  if condition_status(status, "Ready") == "False" then
    return { status = "Degraded", message = ready or "shared, but the last sync failed" }
  end
  return { status = "Healthy", message = ready or "shared" }
end

-- Approved, waiting for its spec.startAt: nothing to do until then, and nothing wrong.
if phase == "Scheduled" then
  return { status = "Suspended", message = ready or "scheduled" }
end

-- Waiting for reviews or for the signed agreement's reference, or approved and being executed (a
-- failed attempt is retried): a sync wave that waits for health waits for all of them.
if phase == "Pending" or phase == "AwaitingAgreement" or phase == "Approved" then
  return { status = "Progressing", message = ready or "waiting for review" }
end

-- Not Argo CD's Suspended, which means paused on purpose: a source lost a key or became more
-- sensitive than reviewed, nothing is shared, and the recipient's workload is missing its data
-- until someone fixes the source or files a new agreement.
if phase == "Suspended" then
  return { status = "Degraded", message = ready or "suspended: the sources no longer hold what was approved" }
end

-- Retention ran out or the share was taken back: the agreement did what it was for, and a
-- finished agreement must not leave the application Degraded for as long as its YAML stays in Git.
if phase == "Expired" or phase == "Revoked" then
  return { status = "Healthy", message = "ended as intended (" .. phase .. "): " .. (ready or "everything shared was removed") }
end

-- Refused for good: someone has to look (a new agreement is the only way forward).
if phase == "Denied" or phase == "TimedOut" or phase == "Failed" then
  return { status = "Degraded", message = condition_message(status, { "Ready", "Accepted" }) or phase }
end

if phase == nil then
  return { status = "Progressing", message = "waiting for the operator" }
end

-- A phase this check does not know, e.g. from a newer operator: say so rather than guess.
if type(phase) ~= "string" then
  phase = "of an unexpected type"
end
return { status = "Unknown", message = "unknown phase " .. phase }
