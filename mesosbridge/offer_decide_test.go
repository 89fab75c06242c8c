package mesosbridge

import (
	"testing"
	"time"
)

func TestRefuseFor(t *testing.T) {
	tests := []struct {
		pending int
		want    time.Duration
	}{
		{0, refuseWhenIdle},
		{1, refuseWhilePending},
		{100, refuseWhilePending},
	}
	for _, tt := range tests {
		if got := refuseFor(tt.pending); got != tt.want {
			t.Errorf("refuseFor(%d) = %v, want %v", tt.pending, got, tt.want)
		}
	}
	if refuseWhilePending > 10*time.Second || refuseWhenIdle < 120*time.Second {
		t.Errorf("policy out of its documented bounds: %v / %v", refuseWhilePending, refuseWhenIdle)
	}
}

func TestNextOfferInterest(t *testing.T) {
	tests := []struct {
		pending    int
		suppressed bool
		want       offerInterest
	}{
		{0, false, interestSuppress},
		{0, true, interestUnchanged},
		{3, true, interestRevive},
		{3, false, interestUnchanged},
	}
	for _, tt := range tests {
		if got := nextOfferInterest(tt.pending, tt.suppressed); got != tt.want {
			t.Errorf("nextOfferInterest(%d, %v) = %v, want %v", tt.pending, tt.suppressed, got, tt.want)
		}
	}
}

func TestDecideOffers(t *testing.T) {
	os := offers(
		offerSpec{id: "o1", host: "h1", cpus: 2, mem: 4096},
		offerSpec{id: "o2", host: "h2", cpus: 2, mem: 4096},
	)
	t.Run("everything launched: long filter", func(t *testing.T) {
		d := decideOffers(roundInput(pendingAgent(0, 0), pendingAgent(1, 0)), os)
		if len(d.Launched) != 2 || len(d.Declines) != 1 || d.Filters.GetRefuseSeconds() != refuseWhenIdle.Seconds() {
			t.Errorf("%+v", d)
		}
	})
	t.Run("work left: short filter", func(t *testing.T) {
		big := pendingAgent(1, 0)
		big.Resources.CPUs = 32
		d := decideOffers(roundInput(pendingAgent(0, 0), big), os)
		if len(d.Launched) != 1 || d.Filters.GetRefuseSeconds() != refuseWhilePending.Seconds() {
			t.Errorf("%+v", d)
		}
		if _, ok := d.Unplaced["agent-1"]; !ok {
			t.Errorf("unplaced %v", d.Unplaced)
		}
	})
}
