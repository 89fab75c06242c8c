package main

import (
	"io"
	"math"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.clusters != 100 || c.agentsPerCluster != 10 || c.hosts != 1000 || c.unreachable != 10 {
		t.Errorf("defaults: %+v", c)
	}
	if _, err := parseFlags([]string{"-clusters", "5", "-hosts", "49"}, io.Discard); err == nil {
		t.Error("5 clusters × 10 agents on 49 hosts accepted")
	}
	if _, err := parseFlags([]string{"-clusters", "5", "-hosts", "50", "-unreachable", "5"}, io.Discard); err == nil {
		t.Error("every cluster unreachable accepted")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP x
go_goroutines 42
rest_client_requests_total{code="200",host="127.0.0.1:1234",method="GET"} 10
rest_client_requests_total{code="200",host="127.0.0.1:1234",method="PATCH"} 5
h_bucket{le="0.001"} 1
h_bucket{le="0.002"} 3
h_bucket{le="+Inf"} 4
`
	ss, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	m := metricSample{series: ss}
	if m.get("go_goroutines") != 42 || m.get("rest_client_requests_total") != 15 {
		t.Errorf("sums: %v %v", m.get("go_goroutines"), m.get("rest_client_requests_total"))
	}
	if q := m.histogram("h").quantile(0.5); math.Abs(q-0.0015) > 1e-9 {
		t.Errorf("median %v, want 0.0015", q)
	}
}

func TestHexIP(t *testing.T) {
	if got := hexIP("0100007F:1F90"); got != "127.0.0.1" {
		t.Errorf("hexIP = %s", got)
	}
	if got := hexPort("0100007F:1F90"); got != 8080 {
		t.Errorf("hexPort = %d", got)
	}
}
