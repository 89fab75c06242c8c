package mesosbridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// subscription is one open SUBSCRIBE stream.
type subscription struct {
	endpoint string // the leading master's scheduler URL, where calls go
	streamID string
	body     io.ReadCloser
	cancel   context.CancelFunc // ends the stream (and the reader)
	// lastEvent is when the reader last read a frame (UnixNano): the heartbeat watchdog
	// looks at the stream itself, not at how fast the loop handles what it read.
	lastEvent atomic.Int64
	readErr   error // set before events is closed
}

// receivedEvent is an event and the moment its frame was read off the stream.
type receivedEvent struct {
	ev *scheduler.Event
	at time.Time
}

// subscribeError is a failed subscription attempt, with what to show and whether another
// master address may do better.
type subscribeError struct {
	reason     ConnectionReason
	message    string
	tryAnother bool
	// masterError is the message of the master's ERROR event, when that is what ended
	// the subscription.
	masterError string
}

func (e *subscribeError) Error() string { return e.message }

// openStream subscribes, trying the masters in turn from index start and following
// leader redirects; it returns the open stream and the index of the master that led to
// it. On failure the error is the most telling answer of the attempt (an authoritative
// refusal stops the attempt at once).
func (c *cluster) openStream(ctx context.Context, tr *transport, cfg FrameworkConfig, start int) (*subscription, int, error) {
	info := frameworkInfo(cfg)
	body, err := calls.Subscribe(&info).Marshal()
	if err != nil {
		return nil, start, err
	}
	var last error
	for i := range cfg.Masters {
		idx := (start + i) % len(cfg.Masters)
		sub, err := c.subscribeAt(ctx, tr, cfg.Masters[idx], body)
		if err == nil {
			return sub, idx, nil
		}
		last = err
		var se *subscribeError
		if ctx.Err() != nil || !errors.As(err, &se) || !se.tryAnother {
			break
		}
	}
	return nil, start, last
}

// subscribeAt subscribes through one master address, following redirects.
func (c *cluster) subscribeAt(ctx context.Context, tr *transport, master string, body []byte) (*subscription, error) {
	endpoint, err := tr.endpoint(master)
	if err != nil {
		return nil, &subscribeError{reason: ConnRefused, message: err.Error(), tryAnother: true}
	}
	for hop := 0; ; hop++ {
		c.markSubscribing("subscribing at " + endpoint)
		streamCtx, cancel := context.WithCancel(ctx)
		resp, err := tr.post(streamCtx, endpoint, "", body)
		if err != nil {
			cancel()
			return nil, &subscribeError{reason: ConnUnreachable, message: fmt.Sprintf("master %s unreachable: %v", endpoint, err), tryAnother: true}
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return &subscription{endpoint: endpoint, streamID: resp.Header.Get(headerStreamID), body: resp.Body, cancel: cancel}, nil
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			location := resp.Header.Get("Location")
			_ = errorBody(resp)
			cancel()
			target, err := redirectTarget(endpoint, location)
			if err != nil {
				return nil, &subscribeError{reason: ConnUnreachable, message: fmt.Sprintf("master %s: %v", endpoint, err), tryAnother: true}
			}
			if hop >= c.opts.MaxRedirects {
				return nil, &subscribeError{reason: ConnUnreachable, tryAnother: true,
					message: fmt.Sprintf("gave up after %d leader redirects (last to %s)", hop, target)}
			}
			c.setConn(false, ConnRedirecting, fmt.Sprintf("master %s redirected to the leader at %s", endpoint, target))
			endpoint = target
			continue
		}
		detail := errorBody(resp)
		cancel()
		return nil, classifySubscribeAnswer(endpoint, resp.StatusCode, detail, tr.principal)
	}
}

// classifySubscribeAnswer turns a refused SUBSCRIBE into the reason the controller shows.
func classifySubscribeAnswer(endpoint string, status int, detail, principal string) error {
	switch status {
	case http.StatusUnauthorized:
		msg := fmt.Sprintf("master %s refused the credentials of principal %q (401 Unauthorized)", endpoint, principal)
		if principal == "" {
			msg = fmt.Sprintf("master %s requires framework authentication (401 Unauthorized) but no credentials are configured", endpoint)
		}
		return &subscribeError{reason: ConnUnauthorized, message: msg}
	case http.StatusForbidden, http.StatusBadRequest:
		return &subscribeError{reason: ConnRefused, message: fmt.Sprintf("master %s refused the subscription: %s", endpoint, detail)}
	case http.StatusServiceUnavailable:
		return &subscribeError{reason: ConnUnreachable, tryAnother: true, message: fmt.Sprintf("master %s has no leader: %s", endpoint, detail)}
	}
	return &subscribeError{reason: ConnUnreachable, tryAnother: true, message: fmt.Sprintf("master %s answered SUBSCRIBE with %s", endpoint, detail)}
}

// read decodes events until the stream ends, stamping each with the time its frame was
// read, and closes out. It ends when ctx does.
func (s *subscription) read(ctx context.Context, out chan<- receivedEvent) {
	defer close(out)
	frames := recordio.NewReader(s.body)
	for {
		frame, err := frames.ReadFrame()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the master closed the event stream")
			}
			s.readErr = err
			return
		}
		at := time.Now()
		s.lastEvent.Store(at.UnixNano())
		ev := new(scheduler.Event)
		if err := ev.Unmarshal(frame); err != nil {
			s.readErr = fmt.Errorf("undecodable event: %w", err)
			return
		}
		select {
		case out <- receivedEvent{ev: ev, at: at}:
		case <-ctx.Done():
			s.readErr = ctx.Err()
			return
		}
	}
}

// close ends the stream.
func (s *subscription) close() {
	s.cancel()
	_ = s.body.Close()
}
