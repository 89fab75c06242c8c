package mesosbridge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// caller sends the calls of one subscription: to the master that accepted the
// SUBSCRIBE, with its stream ID and the framework ID.
type caller struct {
	tr          *transport
	endpoint    string
	streamID    string
	frameworkID string
}

// callError is a call the master did not accept. Every call needs a live subscription,
// so the event loop answers any of them by resubscribing.
type callError struct {
	call   scheduler.Call_Type
	status int
	detail string
}

func (e *callError) Error() string {
	if e.status == 0 {
		return fmt.Sprintf("%s call failed: %s", e.call, e.detail)
	}
	return fmt.Sprintf("%s call answered %s", e.call, e.detail)
}

// call sends c and waits for the master's 202. wrote, when set, runs as soon as the
// request is written to the connection: the moment the call has left the bridge.
func (cl *caller) call(ctx context.Context, c *scheduler.Call, wrote func()) error {
	c.FrameworkID = frameworkIDOf(cl.frameworkID)
	body, err := c.Marshal()
	if err != nil {
		return &callError{call: c.Type, detail: "encoding: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, cl.tr.timeout)
	defer cancel()
	if wrote != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { wrote() },
		})
	}
	resp, err := cl.tr.post(ctx, cl.endpoint, cl.streamID, body)
	if err != nil {
		return &callError{call: c.Type, detail: err.Error()}
	}
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
		// Drain so the keep-alive connection is reused for the next call.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		return nil
	}
	return &callError{call: c.Type, status: resp.StatusCode, detail: errorBody(resp)}
}

func frameworkIDOf(id string) *mesos.FrameworkID { return &mesos.FrameworkID{Value: id} }
