// Package mesostest is an in-process Apache Mesos master emulator in the spirit
// of net/http/httptest. It serves the real v1 scheduler HTTP API
// (POST /api/v1/scheduler, RecordIO event streams, JSON and protobuf bodies)
// and the master's /state, /slaves, /tasks, /master/destroy-volumes and
// /master/unreserve endpoints over a loopback listener, keeps a cluster of
// emulated agents, offers their resources, runs the task state machine with
// acknowledged status updates, and can run command tasks and task groups for
// real as local processes in their sandboxes.
//
// Real Mesos 1.12 is the judge: where it matters to a scheduler, the
// emulator does what the Mesos sources do, file by file (see
// docs/mesos-emulator.md, "Strictness"): sandboxes and volumes as the agent
// and its posix isolator make them, environments and secrets as the
// containerizer and executors pass them, kill grace periods, health checks
// run with curl, reconciliation and recovery after a master restart, the
// master's JSON.
//
// A scheduler written against a real Mesos master works against it
// unchanged; the fault injection methods (FailTask, IgnoreSIGTERM,
// LoseAgent, DropStream, StopHeartbeats, FailoverTo, RestartMaster,
// RejectCalls, ...) reproduce the situations real clusters produce so that
// scheduler code can be tested against them.
//
// A command task in process mode runs under a command executor process,
// which is the program that imports this package started again as
// "mesos-executor": an init function of this package recognizes that
// (argv[0] "mesos-executor" and MESOSTEST_COMMAND_EXECUTOR in the
// environment) and runs the executor instead of the program.
//
// Concurrency model: one mutex (Server.mu) guards the whole cluster state;
// HTTP handlers, timers and task processes take it briefly. Events are encoded
// while the lock is held and queued on the framework's stream, whose HTTP
// handler writes them out without the lock.
package mesostest
