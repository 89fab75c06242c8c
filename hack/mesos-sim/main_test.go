package main

import (
	"reflect"
	"testing"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

func TestPortSliceGivesDisjointRanges(t *testing.T) {
	ranges := []mesostest.PortRange{{Begin: 31000, End: 31009}, {Begin: 32000, End: 32001}}
	var got [][]mesostest.PortRange
	for i := 0; i < 3; i++ {
		s, err := portSlice(ranges, i, 3)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	want := [][]mesostest.PortRange{
		{{Begin: 31000, End: 31003}},
		{{Begin: 31004, End: 31007}},
		{{Begin: 31008, End: 31009}, {Begin: 32000, End: 32001}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := portSlice([]mesostest.PortRange{{Begin: 1, End: 1}}, 0, 2); err == nil {
		t.Fatal("fewer ports than agents accepted")
	}
}

func TestFlagParsing(t *testing.T) {
	creds, err := parseCredentials("k3s:secret, ops:pa:ss")
	if err != nil || creds["k3s"] != "secret" || creds["ops"] != "pa:ss" {
		t.Fatalf("credentials %v %v", creds, err)
	}
	if _, err := parseCredentials("nosecret"); err == nil {
		t.Fatal("malformed credentials accepted")
	}
	agents, err := agentConfigs(config{agents: 2, agentCPUs: 2, agentMem: 1024, agentDisk: 2048,
		agentPorts: "31000-31001", splitPorts: true, agentAttributes: "zone=a", runProcesses: true,
		executorEnv: "PATH=/usr/bin:/bin,HOME=/root"})
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 2 || agents[1].Ports[0].Begin != 31001 || agents[0].Attributes["zone"] != "a" ||
		agents[1].Attributes["agent"] != "2" || !agents[0].RunProcesses || agents[1].ExecutorEnvironment["HOME"] != "/root" {
		t.Fatalf("agents %+v", agents)
	}
	if _, err := newZapLogger("loud"); err == nil {
		t.Fatal("bad log level accepted")
	}
}
