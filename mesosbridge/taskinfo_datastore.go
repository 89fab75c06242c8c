package mesosbridge

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// datastoreCommand runs a datastore image (etcd, MySQL). The controller knows the
// datastore and writes its command; the bridge only supplies where things are: the data
// directory in $DATA_DIR and the offered ports in $PORT_<NAME>. Without a command the
// image's own entrypoint runs, configured through Env and Secrets.
func datastoreCommand(spec TaskSpec, p placement) *mesos.CommandInfo {
	env := merge(spec.Env, portEnv(p.Ports))
	cmd := &mesos.CommandInfo{Environment: environment(env, spec.Secrets)}
	if spec.Command == "" {
		cmd.Shell = ptr(false) // keep the image's entrypoint and arguments
		return cmd
	}
	cmd.Shell = ptr(true)
	cmd.Value = ptr("DATA_DIR=" + dataDirExpr(p) + "\nexport DATA_DIR\nmkdir -p \"$DATA_DIR\"\n" + spec.Command + "\n")
	return cmd
}
