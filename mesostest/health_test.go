package mesostest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// logSink collects the emulator's log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) options(opts Options) Options {
	opts.Logger = funcr.New(func(prefix, args string) {
		l.mu.Lock()
		l.lines = append(l.lines, args)
		l.mu.Unlock()
	}, funcr.Options{})
	return opts
}

func (l *logSink) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func quickCheck(hc *mesos.HealthCheck) *mesos.HealthCheck {
	hc.DelaySeconds = proto.Float64(0)
	hc.IntervalSeconds = proto.Float64(0.1)
	hc.TimeoutSeconds = proto.Float64(2)
	hc.GracePeriodSeconds = proto.Float64(0)
	hc.ConsecutiveFailures = proto.Uint32(2)
	return hc
}

// checker_process.cpp and health_checker.cpp: an HTTP check is the
// executor running curl -s -S -L -k -w '%{http_code}' -o /dev/null -g
// <url> (found in the executor's PATH), healthy iff the code is 200..399;
// an agent without curl fails every HTTP check, and consecutive failures
// get the task killed; COMMAND checks see the executor's environment (the
// resolved secrets included) and run in the sandbox; a zero timeout is
// none.
func TestProcessHealthChecksRunAsTheAgentRunsThem(t *testing.T) {
	fake := t.TempDir()
	writeTestFile(t, filepath.Join(fake, "curl"),
		"#!/bin/sh\nprintf '%s\\n' \"$@\" > \""+fake+"/args\"\nprintf 200\n", 0o755)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	okPort := portOf(t, ok.URL)

	var logs logSink
	withFake := processAgent("127.0.0.1")
	withFake.ExecutorEnvironment = map[string]string{"PATH": fake + ":/usr/bin:/bin"}
	noCurl := processAgent("127.0.0.2")
	noCurl.ExecutorEnvironment = map[string]string{"PATH": "/nonexistent"}
	s := newTestServer(t, logs.options(testOptions()), withFake, noCurl)
	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("checks", partitionAwareCaps...))
	offers := map[string]mesos.Offer{}
	for len(offers) < 2 {
		ev := c.next(2*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS })
		for _, o := range ev.Offers.Offers {
			offers[o.GetHostname()] = o
		}
	}
	a, b := offers["127.0.0.1"], offers["127.0.0.2"]

	viaFake := commandTask("via-fake", a.AgentID.Value, "exec sleep 30", 0.1, 32)
	viaFake.HealthCheck = quickCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP,
		HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 31000, Path: proto.String("/healthz")}})
	command := withEnvironment(commandTask("command", a.AgentID.Value, "exec sleep 30", 0.1, 32),
		secretVariable("TOKEN", valueSecret(testSecret)))
	command.HealthCheck = quickCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{
		Value: proto.String(`sleep 0.3; test "$TOKEN" = ` + testSecret + ` && test "$(pwd)" = "$MESOS_SANDBOX"`)}})
	command.HealthCheck.TimeoutSeconds = proto.Float64(0)
	c.mustCall(launchCall(a.ID, viaFake, command))

	curlless := commandTask("curlless", b.AgentID.Value, "exec /bin/sleep 30", 0.1, 32)
	curlless.HealthCheck = quickCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP,
		HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: okPort}})
	c.mustCall(launchCall(b.ID, curlless))

	for _, id := range []string{"via-fake", "command"} {
		st := c.next(5*time.Second, func(e *schedulerEvent) bool {
			return isUpdateOf(e, id) && c.ackPassing(e) && e.Update.Status.Healthy != nil
		}).Update.Status
		if !st.GetHealthy() || st.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
			t.Errorf("%s: healthy %v, reason %s", id, st.GetHealthy(), st.GetReason())
		}
	}
	args, err := os.ReadFile(filepath.Join(fake, "args"))
	want := "-s\n-S\n-L\n-k\n-w\n%{http_code}\n-o\n/dev/null\n-g\nhttp://127.0.0.1:31000/healthz\n"
	if err != nil || string(args) != want {
		t.Fatalf("curl arguments %q (%v), want %q", args, err, want)
	}

	// Without curl: unhealthy twice, then killed, the end saying unhealthy.
	var unhealthy int
	final := c.next(10*time.Second, func(e *schedulerEvent) bool {
		if !isUpdateOf(e, "curlless") || !c.ackPassing(e) {
			return false
		}
		st := e.Update.Status
		if st.GetState() == mesos.TASK_RUNNING && st.Healthy != nil && !st.GetHealthy() {
			unhealthy++
		}
		return isTerminal(st.GetState())
	}).Update.Status
	if final.GetState() != mesos.TASK_KILLED || final.Healthy == nil || final.GetHealthy() || unhealthy != 2 {
		t.Fatalf("curlless ended %s healthy=%v after %d unhealthy updates", final.GetState(), final.Healthy, unhealthy)
	}
	if !logs.contains("Failed to os::execvpe on path 'curl'") {
		t.Fatal("the missing curl is not in the log")
	}
}

type schedulerEvent = scheduler.Event

func isUpdateOf(e *scheduler.Event, taskID string) bool {
	return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == taskID
}

// ackPassing acknowledges an update as a matcher looks at it.
func (c *rawClient) ackPassing(e *scheduler.Event) bool {
	c.ack(e.Update.Status)
	return true
}

func portOf(t *testing.T, rawURL string) uint32 {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return uint32(p)
}
