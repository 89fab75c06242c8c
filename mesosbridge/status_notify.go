package mesosbridge

import (
	"context"
	"sync"
)

// notifier delivers cluster keys on an unbuffered channel without ever blocking the
// framework loops: a key waits in a set until the reader takes it, and notifying a key
// that is already waiting does nothing. So no change is lost, a burst of updates of one
// cluster triggers one reconcile, and memory is bounded by the number of clusters.
type notifier struct {
	out  chan ClusterKey
	kick chan struct{}

	mu      sync.Mutex
	waiting map[ClusterKey]bool
	queue   []ClusterKey
}

func newNotifier() *notifier {
	return &notifier{out: make(chan ClusterKey), kick: make(chan struct{}, 1), waiting: map[ClusterKey]bool{}}
}

func (n *notifier) notify(key ClusterKey) {
	n.mu.Lock()
	if !n.waiting[key] {
		n.waiting[key] = true
		n.queue = append(n.queue, key)
	}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *notifier) next() (ClusterKey, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.queue) == 0 {
		return ClusterKey{}, false
	}
	key := n.queue[0]
	n.queue = n.queue[1:]
	// Taken off the set before delivery: a change during delivery queues the key again.
	delete(n.waiting, key)
	return key, true
}

// run pumps keys to out until ctx ends.
func (n *notifier) run(ctx context.Context) {
	for {
		key, ok := n.next()
		if !ok {
			select {
			case <-n.kick:
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case n.out <- key:
		case <-ctx.Done():
			return
		}
	}
}
