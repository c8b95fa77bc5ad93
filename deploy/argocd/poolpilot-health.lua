-- Argo CD health check for poolpilot.io/PoolPolicy
-- (argocd-cm key resource.customizations.health.poolpilot.io_PoolPolicy; see argocd-cm-patch.yaml).
--
--   Progressing  no status yet, no Ready condition, Ready=Unknown, or the operator has not yet
--                observed metadata.generation (status is about an older spec)
--   Healthy      Ready=True for the current generation
--   Degraded     Ready=False for the current generation; the message is the condition's message
--
-- Limited (AtMax, Stabilizing, ...) and MetricsAvailable=False are not Argo CD health: the policy
-- still does its job (it holds values); alert on them instead (deploy/monitoring/).
-- Argo CD runs this with gopher-lua (Lua 5.1); test/unit/deploy/argocd-health.test.ts runs it
-- with lua5.4 through test/harness.lua. Keep to what both accept.
local hs = {}

local function progressing(message)
  hs.status = "Progressing"
  hs.message = message
  return hs
end

if obj.status == nil then
  return progressing("Waiting for poolpilot to report status")
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
-- The Ready condition's own observedGeneration is the one its verdict is about; fall back to
-- status.observedGeneration.
local observed = obj.status.observedGeneration
if ready ~= nil and ready.observedGeneration ~= nil then
  observed = ready.observedGeneration
end
if generation ~= nil and (observed == nil or observed < generation) then
  return progressing("Waiting for poolpilot to observe generation " .. tostring(generation) .. " (observed " .. tostring(observed or "none") .. ")")
end

if ready == nil then
  return progressing("Waiting for the Ready condition")
end

local message = ready.message
if message == nil or message == "" then
  message = ready.reason or ""
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = message
  return hs
end
return progressing(message)
