package mesostest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// FuzzSchedulerCall feeds arbitrary bodies to POST /api/v1/scheduler in both
// encodings. Whatever does not decode into a valid call must be answered
// 400, and nothing may take the emulator down.
func FuzzSchedulerCall(f *testing.F) {
	fid := &mesos.FrameworkID{Value: "fuzz"}
	seeds := []*scheduler.Call{
		{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: frameworkInfo("fuzz")}},
		{Type: scheduler.Call_TEARDOWN, FrameworkID: fid},
		launchCall(mesos.OfferID{Value: "o"}, commandTask("t", "a", "true", 1, 32)),
		{Type: scheduler.Call_DECLINE, FrameworkID: fid, Decline: &scheduler.Call_Decline{Filters: &mesos.Filters{RefuseSeconds: proto.Float64(-1)}}},
		{Type: scheduler.Call_KILL, FrameworkID: fid, Kill: &scheduler.Call_Kill{TaskID: mesos.TaskID{Value: "t"}}},
		{Type: scheduler.Call_ACKNOWLEDGE, FrameworkID: fid, Acknowledge: &scheduler.Call_Acknowledge{UUID: []byte("short")}},
		{Type: scheduler.Call_RECONCILE, FrameworkID: fid, Reconcile: &scheduler.Call_Reconcile{}},
		{Type: scheduler.Call_MESSAGE, FrameworkID: fid},
	}
	for _, c := range seeds {
		b, err := c.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		j, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j, false)
	}
	for _, raw := range []string{
		"", "{", "null", "[]", `{"type":"SUBSCRIBE"}`, `{"type":"NOPE"}`, `{"type":7,"framework_id":{"value":1}}`,
		`{"type":"ACCEPT","framework_id":{"value":"x"},"accept":{"operations":[{"type":"LAUNCH"}]}}`,
		"\x12\x00", "\xff\xff\xff\xff\x0f", "\x08\x01\x1a\x05\x0a\x03\x0a\x01a",
	} {
		f.Add([]byte(raw), false)
		f.Add([]byte(raw), true)
	}

	opts := testOptions()
	opts.AllocationInterval = time.Hour // offers are not what is fuzzed
	s := NewServer(opts, smallAgent("127.0.0.1"))
	f.Cleanup(s.Close)
	client := &http.Client{Timeout: 10 * time.Second}
	endpoint := s.URL() + "/api/v1/scheduler"

	f.Fuzz(func(t *testing.T, body []byte, protobuf bool) {
		media := mediaJSON
		if protobuf {
			media = mediaProtobuf
		}
		req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", media)
		req.Header.Set("Accept", media)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request failed (did the handler panic?): %v", err)
		}
		// A well-formed SUBSCRIBE opens a stream; reading its first event
		// is enough, then hang up.
		if resp.StatusCode == http.StatusOK {
			buf := make([]byte, 1)
			_, _ = resp.Body.Read(buf)
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()

		call, decodeErr := decodeCall(media, body)
		valid := decodeErr == nil && validateCall(call) == nil
		switch {
		case !valid && resp.StatusCode != http.StatusBadRequest:
			t.Fatalf("malformed call answered %d, want 400", resp.StatusCode)
		case valid && call.Type == scheduler.Call_SUBSCRIBE && resp.StatusCode != http.StatusOK:
			t.Fatalf("valid SUBSCRIBE answered %d", resp.StatusCode)
		case valid && call.Type != scheduler.Call_SUBSCRIBE && resp.StatusCode != http.StatusBadRequest:
			// No framework is subscribed with the fuzzer's IDs... unless a
			// fuzzed SUBSCRIBE created one; then 403/202 are right too.
			if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
				t.Fatalf("valid %s answered %d", call.Type, resp.StatusCode)
			}
		}
		if r, err := client.Get(s.URL() + "/health"); err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("emulator unhealthy after input: %v", err)
		} else {
			r.Body.Close()
		}
	})
}
