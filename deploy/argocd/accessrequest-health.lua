-- Argo CD health of a gatehouse.dev AccessRequest, from status.phase and the Ready condition.
-- argocd-cm-patch.yaml carries this exact text (tests/argocd_health.rs checks it and runs every
-- phase through gopher-lua, Argo CD's Lua). Argo CD runs argocd-cm scripts without the string
-- library, so only base Lua is used, and every field is read through get() so that a missing or
-- oddly typed field can never make the check fail. Each kind's check is one standalone script, so
-- the helpers are repeated in datasharingagreement-health.lua.

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

local status = get(obj, "status")
local generation = get(get(obj, "metadata"), "generation")

-- Until the operator has written a status for the current spec, whatever the status says is about
-- an older object (or nothing yet): not a verdict to show, nor one a sync wave may act on.
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
  return { status = "Healthy", message = ready or "access granted" }
end

-- Approved, waiting for its spec.startAt: nothing to do until then, and nothing wrong.
if phase == "Scheduled" then
  return { status = "Suspended", message = ready or "scheduled" }
end

-- Waiting for approvers, or approved and being provisioned (a failed attempt is retried): a sync
-- wave that waits for health waits for the approval.
if phase == "Pending" or phase == "Approved" then
  return { status = "Progressing", message = ready or "waiting for approval" }
end

-- Access ran its time or was taken back: the request did what it was for, and a finished request
-- must not leave the application Degraded for as long as its YAML stays in Git.
if phase == "Expired" or phase == "Revoked" then
  return { status = "Healthy", message = "ended as intended (" .. phase .. "): " .. (ready or "access removed") }
end

-- Refused for good: someone has to look (a new request is the only way forward).
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
