// Package soak is a fault soak of the whole operator: its test (TestSoak) runs the real
// operator binary against a real kube-apiserver (envtest) and the Mesos master emulator
// (mesostest), injects faults chosen by a seeded RNG for a bounded time (clusters created,
// scaled and deleted, tasks failed, streams dropped, the master unavailable, rejecting
// calls or failed over, agents lost and restored, the operator SIGKILLed mid-deploy), and
// after each step checks invariants on the emulator's state and the K3sClusters' status.
// docs/soak.md describes it; `make soak` runs it for ten minutes.
package soak
