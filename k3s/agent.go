package k3s

import "errors"

// Agent is a K3s agent (a worker node).
type Agent struct {
	Common
	// ServerURL is the server the agent registers with (--server).
	ServerURL string
	// Token is the token the agent joins with.
	Token string
}

// Process renders the agent.
func (g Agent) Process() (Process, error) {
	errs := g.Common.validate()
	if g.ServerURL == "" {
		errs = append(errs, errors.New("an agent needs the server URL"))
	}
	if g.Token == "" {
		errs = append(errs, errors.New("an agent needs a join token"))
	}
	if err := errors.Join(errs...); err != nil {
		return Process{}, err
	}
	var sc script
	sc.preamble()
	sc.privateMounts(map[string]string{"/etc/rancher": "rancher"}, nil)
	var a args
	a.literal("agent")
	a.addExpr("data-dir", "$DATA_DIR")
	a.add("server", g.ServerURL)
	a.add("node-name", g.NodeName)
	g.nodeArgs(&a)
	sc.line("exec ", g.Executable, " ", a.shell())
	return Process{
		Script:  inPrivateMountNamespace(sc.String()),
		Env:     g.Env,
		Secrets: map[string][]byte{EnvToken: []byte(g.Token)},
	}, nil
}
