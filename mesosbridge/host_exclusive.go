package mesosbridge

import "sync"

// Some tasks hold what belongs to the whole host and cannot be moved to an offered port:
// a K3s agent's kubelet (10250), kube-proxy (10249, 10256), containerd stream server,
// flannel's VXLAN port and links, and a server's embedded etcd (2379, 2380). Within one
// cluster hostname:UNIQUE keeps such tasks apart; across the clusters one bridge runs, a
// task's HostExclusive class does: two live tasks of one class from different clusters
// never share a Mesos host. (Clusters run by another operator, or other frameworks,
// are not seen: keep them apart with agent attributes and constraints.)

// exclusiveHosts lists, per class, the hosts where clusters other than except run a live
// task of that class. It reads the other clusters' state under their locks, so the
// caller must hold no cluster lock; the manager's placement lock, held around it and the
// round that uses it, keeps two clusters from claiming one host at the same time.
func (m *Manager) exclusiveHosts(except ClusterKey) map[string]map[string]bool {
	m.mu.Lock()
	clusters := make([]*cluster, 0, len(m.clusters))
	for key, c := range m.clusters {
		if key != except {
			clusters = append(clusters, c)
		}
	}
	m.mu.Unlock()
	out := map[string]map[string]bool{}
	for _, c := range clusters {
		c.mu.Lock()
		for _, t := range c.live {
			class := c.exclusive[t.Name]
			if class == "" || t.Hostname == "" {
				continue
			}
			if out[class] == nil {
				out[class] = map[string]bool{}
			}
			out[class][t.Hostname] = true
		}
		c.mu.Unlock()
	}
	return out
}

// wantsExclusiveHosts says whether any desired task of the cluster has a class.
func (c *cluster) wantsExclusiveHosts() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.desired {
		if s.HostExclusive != "" {
			return true
		}
	}
	return false
}

// hostClaims is the manager's placement lock and view of other clusters' exclusive hosts.
type hostClaims struct {
	m  *Manager
	mu sync.Mutex
}

func (h *hostClaims) lock() (unlock func()) {
	h.mu.Lock()
	return h.mu.Unlock
}

func (h *hostClaims) of(except ClusterKey) map[string]map[string]bool {
	return h.m.exclusiveHosts(except)
}
