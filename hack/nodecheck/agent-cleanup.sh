#!/bin/sh
# agent-cleanup.sh — what a killed K3s agent task leaves in the network namespace it ran
# in, removed. Run it (as root) in that network namespace after the task is gone, and only
# when no other K3s agent runs in the same network namespace: the links and chains below
# are per network namespace, not per agent.
#
# Mounts, processes, pod network namespaces and the pods' veths need no cleanup: they die
# with the task (agent-task.sh, RECIPE.md). What stays is kernel state of the network
# namespace itself:
#   cni0, flannel.1   the pods' bridge and flannel's VXLAN device (with their routes)
#   KUBE-*, FLANNEL-*, CNI-*  iptables/ip6tables chains of kube-proxy, the kubelet,
#                     flannel and the portmap plugin, and the rules jumping to them
# A relaunch of the agent in the same namespace needs none of this: flannel, the bridge
# plugin and kube-proxy take over what they find. The cluster side (the Node object, and
# with it K3s's <node>.node-password.k3s Secret) is the operator's: `kubectl delete node`.
#
# Per-namespace sysctls K3s set (net.ipv4.conf.all.forwarding=1,
# net.bridge.bridge-nf-call-iptables=1, route_localnet=1) are left as they are.
set -eu

for l in cni0 flannel.1 flannel-v6.1; do
  if ip link show "$l" >/dev/null 2>&1; then
    ip link del "$l"
  fi
done

for v in "" 6; do
  save="ip${v}tables-save"
  restore="ip${v}tables-restore"
  command -v "$save" >/dev/null || continue
  rules="$("$save")"
  if printf '%s\n' "$rules" | grep -qE 'KUBE-|FLANNEL-|CNI-'; then
    # A full restore replaces each table listed: everything else is written back as it was.
    printf '%s\n' "$rules" | grep -vE 'KUBE-|FLANNEL-|CNI-' | "$restore"
  fi
done
