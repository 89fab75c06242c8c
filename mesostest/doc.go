// Package mesostest is an in-process Apache Mesos master emulator in the spirit
// of net/http/httptest. It serves the real v1 scheduler HTTP API
// (POST /api/v1/scheduler, RecordIO event streams, JSON and protobuf bodies)
// over a loopback listener, keeps a cluster of emulated agents, offers their
// resources, runs the task state machine with acknowledged status updates,
// and can run plain command tasks for real as local processes in a sandbox.
//
// A scheduler written against a real Mesos master works against it
// unchanged; the fault injection methods (FailTask, LoseAgent, DropStream,
// StopHeartbeats, FailoverTo, RejectCalls, ...) reproduce the situations real
// clusters produce so that scheduler code can be tested against them.
//
// Concurrency model: one mutex (Server.mu) guards the whole cluster state;
// HTTP handlers, timers and task processes take it briefly. Events are encoded
// while the lock is held and queued on the framework's stream, whose HTTP
// handler writes them out without the lock.
package mesostest
