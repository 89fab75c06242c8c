-- Argo CD health check for cluster.mesosk3s.io/K3sCluster.
-- Argo CD runs it with the live object as the global table `obj` and shows the
-- returned hs.status (Healthy, Progressing, Degraded, Suspended) and hs.message.
-- It reads the operator's kstatus conditions: Stalled means the operator cannot make
-- progress without a change, Reconciling means it is still working towards the spec.
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function messageOf(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

-- Paused comes first: a paused cluster's conditions are frozen and would mislead.
if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (spec.paused)"
  return hs
end
-- Like Cluster API, the annotation pauses whatever its value is.
if obj.metadata.annotations ~= nil and obj.metadata.annotations["cluster.x-k8s.io/paused"] ~= nil then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (cluster.x-k8s.io/paused annotation)"
  return hs
end

if obj.status == nil or obj.status.conditions == nil or #obj.status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

-- Stalled before the generation check: the operator does not advance
-- observedGeneration on a pass that failed, so a stalled cluster's is often stale.
local stalled = condition("Stalled")
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = messageOf(stalled, "The operator cannot make progress")
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. string.format("%d", generation)
  return hs
end

local reconciling = condition("Reconciling")
if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = messageOf(reconciling, "Reconciling")
  return hs
end

local ready = condition("Ready")
if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = messageOf(ready, "Ready")
  return hs
end

-- Not stalled, not reconciling and not ready: the operator has not settled yet.
hs.status = "Progressing"
hs.message = messageOf(ready, "Waiting for the cluster to become Ready")
return hs
