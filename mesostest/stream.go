package mesostest

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// maxQueuedEvents bounds the events waiting to be written to one
// subscriber. A scheduler that stops reading that long is disconnected (as
// a dead TCP peer would be) rather than letting memory grow without bound.
const maxQueuedEvents = 100000

// stream is one SUBSCRIBE connection: a queue of encoded events drained by
// the HTTP handler that holds the response open.
type stream struct {
	id  string
	enc eventEncoding

	mu     sync.Mutex
	queue  [][]byte
	closed bool

	wake              chan struct{}
	done              chan struct{}
	closeOnce         sync.Once
	heartbeatsStopped atomic.Bool
}

func newStream(enc eventEncoding) *stream {
	return &stream{
		id:   uuid.NewString(),
		enc:  enc,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// send encodes and queues an event. It reports false when the event could
// not be queued (stream closed, or overflowing, which closes it).
func (st *stream) send(ev *scheduler.Event) bool {
	frame, err := st.enc.encodeEvent(ev)
	if err != nil {
		return false
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return false
	}
	if len(st.queue) >= maxQueuedEvents {
		st.mu.Unlock()
		st.close()
		return false
	}
	st.queue = append(st.queue, frame)
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
	return true
}

// close ends the stream; events already queued are still written (so an
// ERROR event sent just before closing reaches the scheduler), new ones are
// refused.
func (st *stream) close() {
	st.closeOnce.Do(func() {
		st.mu.Lock()
		st.closed = true
		st.mu.Unlock()
		close(st.done)
	})
}

func (st *stream) take() [][]byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	q := st.queue
	st.queue = nil
	return q
}

// serveSubscribe answers a SUBSCRIBE call: 200 with a RecordIO stream of
// events until the scheduler goes away, the stream is replaced or dropped,
// or the server closes.
func (s *Server) serveSubscribe(w http.ResponseWriter, r *http.Request, sub *scheduler.Call_Subscribe, enc eventEncoding, principal string) {
	st := newStream(enc)
	s.mu.Lock()
	fw := s.subscribeLocked(sub, principal, st)
	heartbeat := s.opts.HeartbeatInterval
	s.mu.Unlock()

	w.Header().Set("Content-Type", string(enc))
	w.Header().Set(headerStreamID, st.id)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	writer := recordio.NewWriter(w)

	ticker := time.NewTicker(heartbeat)
	defer ticker.Stop()
	heartbeatEvent := &scheduler.Event{Type: scheduler.Event_HEARTBEAT}

	flush := func() bool {
		for _, frame := range st.take() {
			if err := writer.WriteFrame(frame); err != nil {
				return false
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	defer func() {
		st.close()
		if fw != nil {
			s.mu.Lock()
			s.streamEndedLocked(fw, st)
			s.mu.Unlock()
		}
	}()
	for {
		if !flush() {
			return
		}
		select {
		case <-st.wake:
		case <-ticker.C:
			if !st.heartbeatsStopped.Load() {
				st.send(heartbeatEvent)
			}
		case <-st.done:
			flush()
			return
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
	}
}
