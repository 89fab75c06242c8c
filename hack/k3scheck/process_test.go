package k3scheck

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/k3s"
)

// k3sProcess is a K3s server running in its own process group, so stopping it also
// stops anything it spawned.
type k3sProcess struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // valid once exited is closed
}

// startK3s runs the rendered process the way a task runner does: its script under
// /bin/sh -c, in a sandbox directory, with $DATA_DIR, $PORT_<NAME> for its consecutive
// ports from port, and its variables and secrets in the environment. The script execs
// K3s, so the process is K3s itself.
func startK3s(t *testing.T, p k3s.Process, sandbox string, port int) *k3sProcess {
	t.Helper()
	logPath := filepath.Join(sandbox, "k3s.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", p.Script)
	cmd.Dir = sandbox
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "MESOS_SANDBOX=" + sandbox, "DATA_DIR=" + filepath.Join(sandbox, "data")}
	for i, name := range p.Ports {
		cmd.Env = append(cmd.Env, "PORT_"+strings.ToUpper(name)+"="+strconv.Itoa(port+i))
	}
	for k, v := range p.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range p.Secrets {
		cmd.Env = append(cmd.Env, k+"="+string(v))
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: if the test binary dies without cleaning up, K3s goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logFile.Close()
	proc := &k3sProcess{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() { proc.err = cmd.Wait(); close(proc.exited) }()
	return proc
}

// cmdline is the process's command line as any local user can read it.
func (p *k3sProcess) cmdline() (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
	return strings.ReplaceAll(string(b), "\x00", " "), err
}

func (p *k3sProcess) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("k3s exited: %v", p.err)
	default:
		return nil
	}
}

// stop sends SIGTERM to the group, then SIGKILL after the grace. SIGTERM stops the control
// plane, but a --disable-agent server still runs a standalone agent loop that, in this
// build (no bundled CNI binaries, so no host-local on PATH), retries "Waiting to retrieve
// agent configuration" forever and keeps the process alive. It returns how the process
// ended and fails the test if any process of the group is left.
func (p *k3sProcess) stop(t *testing.T, grace time.Duration) string {
	t.Helper()
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	how := "exited on SIGTERM"
	select {
	case <-p.exited:
	case <-time.After(grace):
		how = fmt.Sprintf("ignored SIGTERM for %s, killed", grace)
	}
	// Kill the group even when the leader exited: a child may have outlived it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			t.Errorf("processes of k3s's group %d are still alive after SIGKILL", pgid)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return how
}

// logTail is the end of K3s's log, for failure messages.
func (p *k3sProcess) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// listeners lists the TCP addresses the process listens on, from /proc: its socket
// inodes matched against the kernel's LISTEN sockets.
func (p *k3sProcess) listeners() ([]string, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.cmd.Process.Pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		found, err := listeningSockets(table, inodes)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	sort.Strings(out)
	return out, nil
}

const tcpListen = "0A"

func listeningSockets(table string, inodes map[string]bool) ([]string, error) {
	f, err := os.Open(table)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(s.Text())
		if len(f) < 10 || f[3] != tcpListen || !inodes[f[9]] {
			continue
		}
		addr, err := procAddr(f[1])
		if err != nil {
			return nil, err
		}
		out = append(out, addr)
	}
	return out, s.Err()
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90": the IP as native-endian 32-bit
// words in hex, the port big-endian hex.
func procAddr(s string) (string, error) {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	if !ok || len(hexIP)%8 != 0 {
		return "", fmt.Errorf("bad /proc/net/tcp address %q", s)
	}
	ip := make(net.IP, 0, len(hexIP)/2)
	for i := 0; i < len(hexIP); i += 8 {
		word, err := strconv.ParseUint(hexIP[i:i+8], 16, 32)
		if err != nil {
			return "", err
		}
		ip = append(ip, byte(word), byte(word>>8), byte(word>>16), byte(word>>24))
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), nil
}

// freePortPair finds a loopback port p with p+1 also free: K3s serves the supervisor and
// the API proxy on --https-listen-port and runs the real kube-apiserver on the next port.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		l.Close()
		if err == nil {
			next.Close()
			return port
		}
	}
	t.Fatal("no two consecutive free ports on 127.0.0.1")
	return 0
}

// k3sBinary is bin/k3s at the repository root, built by hack/build-k3s.sh.
func k3sBinary(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "bin", "k3s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		msg := "bin/k3s is not built: run hack/build-k3s.sh (about 3.5 min the first time)"
		if os.Getenv("MESOSK3S_REQUIRE_K3S") != "" {
			t.Fatal(msg + "; MESOSK3S_REQUIRE_K3S is set, so this check may not be skipped")
		}
		t.Skip(msg + "; make test builds it and sets MESOSK3S_REQUIRE_K3S")
	} else if err != nil {
		t.Fatal(err)
	}
	return path
}
