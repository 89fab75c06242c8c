package mesosbridge

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

var (
	// Task and port names end up in task IDs, DNS names (Mesos-DNS) and env var names.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// k3sSecretKeys are the keys a K3s task accepts in TaskSpec.Secrets.
var k3sSecretKeys = map[string]bool{
	SecretToken: true, SecretDatastoreEndpoint: true,
	SecretServerCACert: true, SecretServerCAKey: true,
	SecretClientCACert: true, SecretClientCAKey: true,
	SecretRequestHeaderCACert: true, SecretRequestHeaderCAKey: true,
	SecretEtcdPeerCACert: true, SecretEtcdPeerCAKey: true,
	SecretEtcdServerCACert: true, SecretEtcdServerCAKey: true,
	SecretServiceKey: true,
}

// ValidateTaskSpec reports every problem that would stop the task from being launched,
// so the controller can surface it instead of the bridge retrying an impossible launch.
func ValidateTaskSpec(s TaskSpec) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !dnsLabel.MatchString(s.Name) {
		bad("name %q must be a DNS label (lower case letters, digits, '-')", s.Name)
	}
	if s.Resources.CPUs <= 0 || s.Resources.MemMiB <= 0 || s.Resources.DiskMiB < 0 {
		bad("resources need cpus > 0, mem > 0 and disk >= 0, got %+v", s.Resources)
	}
	seenPort := map[string]bool{}
	for _, p := range s.Ports {
		if !dnsLabel.MatchString(p) || seenPort[p] {
			bad("port name %q must be a unique DNS label", p)
		}
		seenPort[p] = true
	}
	if err := ValidateConstraints(s.Constraints); err != nil {
		errs = append(errs, err)
	}
	switch s.Runtime {
	case RuntimeDocker:
		if s.Image == "" {
			bad("runtime Docker needs an image")
		} else if !imageHasTag(s.Image) && s.Role != RoleDatastore && s.K3s.Version == "" {
			bad("image %q has no tag and no K3s version to derive it from", s.Image)
		}
	case RuntimeBinary:
		if s.Role == RoleDatastore {
			bad("datastore tasks run an image: runtime must be Docker")
		}
		if s.BinaryURL == "" {
			bad("runtime Binary needs a binary URL")
		}
		if s.NetworkMode == NetworkCNI {
			bad("runtime Binary runs with Host networking")
		}
	default:
		bad("runtime %q must be Docker or Binary", s.Runtime)
	}
	switch s.NetworkMode {
	case NetworkHost, "":
	case NetworkCNI:
		if s.NetworkName == "" {
			bad("network mode CNI needs a network name")
		}
	default:
		bad("network mode %q must be Host or CNI", s.NetworkMode)
	}
	if v := s.Volume; v != nil {
		if v.SizeMiB <= 0 {
			bad("volume size must be > 0")
		}
		if v.ContainerPath == "" || path.IsAbs(v.ContainerPath) || path.Clean(v.ContainerPath) != v.ContainerPath ||
			strings.HasPrefix(v.ContainerPath, "..") {
			bad("volume container path %q must be a clean path relative to the sandbox", v.ContainerPath)
		}
	}
	for k := range s.Env {
		if !envName.MatchString(k) {
			bad("env name %q is not a valid variable name", k)
		}
	}

	switch s.Role {
	case RoleServer, RoleAgent:
		for k := range s.Secrets {
			if !k3sSecretKeys[k] {
				bad("secret key %q is not one a K3s task understands", k)
			}
		}
		if len(s.Secrets[SecretToken]) == 0 {
			bad("a K3s task needs the join token in secrets[%q]", SecretToken)
		}
		if s.Role == RoleServer && !seenPort[PortAPI] {
			bad("a server needs the %q port", PortAPI)
		}
		if s.Role == RoleAgent && s.K3s.ServerURL == "" {
			bad("an agent needs the server URL")
		}
		for _, n := range secretEnvNames(s) {
			if _, clash := s.Env[n]; clash {
				bad("env %q would shadow a secret", n)
			}
		}
	case RoleDatastore:
		for k := range s.Secrets {
			if !envName.MatchString(k) {
				bad("datastore secret key %q must be an env var name", k)
			}
			if _, clash := s.Env[k]; clash {
				bad("env %q is also a secret", k)
			}
		}
	default:
		bad("role %q must be server, agent or datastore", s.Role)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("task %s: %w", s.Name, errors.Join(errs...))
}
