package mesosbridge

import (
	"math/rand/v2"
	"time"
)

// backoffState hands out the delays of successive failed attempts.
type backoffState struct {
	cfg     Backoff
	current time.Duration
}

func newBackoffState(cfg Backoff) *backoffState { return &backoffState{cfg: cfg} }

// next is the delay before the next attempt: the nominal delay doubles per failure up to
// Max, and the actual one is drawn from [nominal/2, nominal] ("equal jitter"), which
// spreads reconnecting frameworks without ever retrying at once.
func (b *backoffState) next() time.Duration {
	if b.current == 0 {
		b.current = b.cfg.Initial
	} else {
		b.current = min(2*b.current, b.cfg.Max)
	}
	half := b.current / 2
	return half + rand.N(half+1)
}

// reset starts over after a success.
func (b *backoffState) reset() { b.current = 0 }
