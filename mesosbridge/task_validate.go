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
	// volumePathChars need no shell quoting, so the command prologue can name the path bare.
	volumePathChars = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

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
	switch s.Container.Type {
	case ContainerDocker:
		if s.Container.Image == "" {
			bad("a Docker container needs an image")
		}
		if len(s.Secrets) > 0 {
			// src/docker/docker.cpp copies variable.value(), which a SECRET variable has not:
			// the task would start with every secret empty.
			bad("a Docker container cannot receive secrets: the Docker containerizer does not resolve SECRET variables (they arrive empty); run the image under the Mesos containerizer instead")
		}
	case ContainerImage:
		if s.Container.Image == "" {
			bad("an image container needs an image")
		}
		if s.Command == "" {
			bad("an image task under the Mesos containerizer needs a command")
		}
		if s.Container.Privileged || len(s.Container.Tmpfs) > 0 {
			bad("privileged and tmpfs are Docker container options")
		}
	case ContainerNone:
		if s.Command == "" {
			bad("a command task needs a command")
		}
		if s.NetworkMode == NetworkCNI {
			bad("a command task without a container runs with Host networking")
		}
	default:
		bad("container type %q must be Image, Docker or none", s.Container.Type)
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
		// Mesos links a persistent volume into the sandbox only at a relative path without
		// '/' (src/slave/containerizer/mesos/isolators/filesystem/posix.cpp skips others).
		if v.ContainerPath == "" || path.IsAbs(v.ContainerPath) || strings.Contains(v.ContainerPath, "/") ||
			v.ContainerPath == "." || v.ContainerPath == ".." || !volumePathChars.MatchString(v.ContainerPath) {
			bad("volume container path %q must be one name relative to the sandbox (letters, digits, . _ -)", v.ContainerPath)
		}
	}
	for _, u := range s.Fetch {
		if u.URL == "" {
			bad("a fetch URI needs a URL")
		}
		if strings.Contains(u.OutputFile, "/") || u.OutputFile == ".." {
			bad("fetch output file %q must be a plain file name", u.OutputFile)
		}
	}
	if h := s.HealthCheck; h != nil {
		switch h.Protocol {
		case HealthHTTP, HealthHTTPS, HealthTCP:
		default:
			bad("health check protocol %q must be HTTP, HTTPS or TCP", h.Protocol)
		}
		if !seenPort[h.Port] {
			bad("health check port %q is not one of the task's ports", h.Port)
		}
	}
	reserved := func(name string) bool {
		return name == EnvDataDir || name == EnvHost || strings.HasPrefix(name, EnvPortPrefix) || strings.HasPrefix(name, "MESOS_")
	}
	for k := range s.BootstrapEnv {
		if _, clash := s.Env[k]; clash || !envName.MatchString(k) || reserved(k) {
			bad("bootstrap env name %q must be a valid, unreserved variable name not also in env", k)
		}
	}
	for k := range s.Env {
		if !envName.MatchString(k) {
			bad("env name %q is not a valid variable name", k)
		} else if reserved(k) {
			bad("env name %q is reserved for what Mesos and the bridge set", k)
		}
	}
	for k := range s.Secrets {
		if !envName.MatchString(k) {
			bad("secret name %q is not a valid variable name", k)
		} else if reserved(k) {
			bad("secret name %q is reserved for what Mesos and the bridge set", k)
		}
		if _, clash := s.Env[k]; clash {
			bad("env %q is also a secret", k)
		}
	}
	if s.Name != TaskName(s.Role, s.Index) {
		bad("name %q must be %q: <role>-<index>, the scheme the bridge recognises its tasks by", s.Name, TaskName(s.Role, s.Index))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("task %s: %w", s.Name, errors.Join(errs...))
}
