// Package k3s is everything the operator knows about K3s: what a server or an agent
// process is — its command script, arguments, environment names, the files it needs
// before it starts, the ports it listens on and how to tell it is healthy — rendered
// from plain inputs.
//
// It knows nothing of Mesos and nothing of the K3sCluster API. The controller fills a
// Server or an Agent from the spec, calls Process, and hands what comes back to the Mesos
// bridge as a generic task. The script runs under /bin/sh and relies on three things the
// task runner provides:
//
//   - $DATA_DIR, a directory for the process's state that is the same on every run of the
//     task (K3s writes absolute paths into its own files);
//   - $PORT_<NAME> for every name in Process.Ports, the port numbers the task was given;
//   - $HOST, the host name clients reach the process at (may be empty);
//   - the variables of Process.Env and Process.Secrets.
//
// Because the same renderer drives production and hack/k3scheck, the K3s behaviour the
// operator relies on is proven on the real binary, not on a copy of the flags.
package k3s
