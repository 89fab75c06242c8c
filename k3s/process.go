package k3s

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// Process is one K3s process as a task runner must start it.
type Process struct {
	// Script is the /bin/sh script that prepares the data directory and execs K3s, so
	// that K3s receives the task's signals itself.
	Script string
	// Env is plain environment. Nothing secret: a task runner may show it.
	Env map[string]string
	// BootstrapEnv is plain environment that the script reads only when the data
	// directory holds no datastore yet (a first start, or a server whose volume was
	// lost): a running task need not be replaced when it changes.
	BootstrapEnv map[string]string
	// Secrets are environment variables whose values must never be shown: delivered by
	// the task runner as secrets. The script moves the TLS material into files and unsets
	// those variables before K3s starts.
	Secrets map[string][]byte
	// Ports are the names of the ports the process listens on, in the order a runner
	// must give them: consecutive numbers, because K3s binds its API port + 1 as well.
	Ports []string
	// Health is how to tell the process serves; nil when K3s has no check that can be
	// asked without credentials.
	Health *HealthCheck
}

// HealthCheck is an HTTP(S) GET that answers 200 once the process serves.
type HealthCheck struct {
	Scheme string // "https"
	Port   string // one of Process.Ports
	Path   string
	// Delay before the first check, Interval between checks, Timeout of each.
	Delay, Interval, Timeout time.Duration
	// GracePeriod is how long failures are ignored after the start; ConsecutiveFailures
	// after it mark the process unhealthy.
	GracePeriod         time.Duration
	ConsecutiveFailures int
}

// script accumulates the lines of a task script.
type script struct{ b strings.Builder }

func (s *script) line(parts ...string) {
	s.b.WriteString(strings.Join(parts, ""))
	s.b.WriteByte('\n')
}

func (s *script) String() string { return s.b.String() }

// preamble stops at the first failing step and keeps every file the process writes
// private to it.
func (s *script) preamble() {
	s.line("set -e")
	s.line("umask 077")
	s.line(`mkdir -p "$DATA_DIR"`)
}

// ExitWrongVersion is the exit status of a task whose K3s executable is not the release it
// was rendered for: a binaryURL or image of another version is refused, never run.
const ExitWrongVersion = 78

// versionCheck makes the script stop with ExitWrongVersion unless the executable says it
// is version (`k3s --version`: "k3s version v1.25.4+k3s1 (0dc63334)").
func (s *script) versionCheck(executable, version string) {
	if version == "" {
		return
	}
	s.line(`k3s_version="$(`, executable, ` --version 2>/dev/null | { read -r _ _ v _; printf '%s' "$v"; })" || true`)
	s.line(`if [ "$k3s_version" != `, shellQuote(version), ` ]; then`)
	s.line(`  printf 'mesosk3s: the K3s executable is %s, not %s (spec.version): not starting it\n' "${k3s_version:-no K3s}" `, shellQuote(version), ` >&2`)
	s.line(`  exit `, strconv.Itoa(ExitWrongVersion))
	s.line(`fi`)
}

// envPrivateMounts tells the inner script that it runs in a mount namespace of its own.
const envPrivateMounts = "MESOSK3S_PRIVATE_MOUNTS"

// privateMounts makes host-global paths K3s hard-codes private to the process: each bind
// gets a directory under $DATA_DIR (kept across runs, like a node's own disk), each tmpfs
// is fresh (volatile state, like a node's /run). It only mounts inside the mount namespace
// inPrivateMountNamespace made, where the mounts propagate nowhere and vanish with the
// task's last process; without one it leaves the host's paths alone.
func (s *script) privateMounts(binds map[string]string, tmpfs []string) {
	s.line(`if [ "${` + envPrivateMounts + `:-}" = 1 ]; then`)
	for _, dst := range sortedKeys(binds) {
		src := `"$DATA_DIR"/` + shellQuote(binds[dst])
		s.line(`  mkdir -p `, src, ` `, shellQuote(dst))
		s.line(`  mount --bind `, src, ` `, shellQuote(dst))
	}
	for _, dst := range tmpfs {
		s.line(`  mkdir -p `, shellQuote(dst))
		s.line(`  mount -t tmpfs -o mode=0755,nosuid,nodev k3s `, shellQuote(dst))
	}
	s.line("fi")
	s.line("unset ", envPrivateMounts)
}

// inPrivateMountNamespace runs the inner script in a mount namespace of its own when the
// host has unshare (util-linux, busybox), with mounts from the host still propagating in.
func inPrivateMountNamespace(inner string) string {
	var s script
	s.line(`if command -v unshare >/dev/null 2>&1; then`)
	s.line(`  export `, envPrivateMounts, `=1`)
	s.line(`  exec unshare --mount --propagation slave -- /bin/sh -c `, shellQuote(inner))
	s.line(`fi`)
	s.b.WriteString(inner)
	return s.String()
}

// word is one word of a command line: literal text, quoted for the shell, or a shell
// expression such as "$PORT_API" that the shell must expand.
type word struct {
	text string
	expr bool
}

// args collects K3s command-line flags in order.
type args []word

// add appends --name=value, skipping empty values.
func (a *args) add(name, value string) {
	if value != "" {
		*a = append(*a, word{text: "--" + name + "=" + value})
	}
}

// addExpr appends --name="expr", expanded by the shell as one word.
func (a *args) addExpr(name, expr string) {
	*a = append(*a, word{text: "--" + name + "=\"" + expr + "\"", expr: true})
}

// addWord appends --name=word, where word is already a shell word (e.g. "$MESOS_SANDBOX"/x).
func (a *args) addWord(name, shellWord string) {
	*a = append(*a, word{text: "--" + name + "=" + shellWord, expr: true})
}

// literal appends words as they are (user-given arguments).
func (a *args) literal(ws ...string) {
	for _, w := range ws {
		*a = append(*a, word{text: w})
	}
}

// shell renders the words for a shell command line.
func (a args) shell() string {
	out := make([]string, len(a))
	for i, w := range a {
		if w.expr {
			out[i] = w.text
		} else {
			out[i] = shellQuote(w.text)
		}
	}
	return strings.Join(out, " ")
}

// portVar is the variable a task runner sets to the number of the named port.
func portVar(name string) string { return "PORT_" + envSuffix(name) }

// envSuffix upper-cases a name and replaces what env names cannot hold with '_'.
func envSuffix(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
