package mesostest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// In process mode a command task runs the way the Mesos command executor
// (src/launcher/executor.cpp) runs it: a long-lived executor process, whose
// command line is the one the containerizer gives mesos-executor
// (containerizer.cpp appends --task_environment=<JSON> with the resolved
// secrets, so any local user sees them with ps), starts the task's command
// as its child, in a session of its own, and reports how it ended.
//
// The executor process is the emulator's own binary started again with
// argv[0] "mesos-executor" and commandExecutorEnv set; init() below then
// runs commandExecutorMain instead of the program. The task's command line
// and environment come over a pipe (fd 3), never over the command line; the
// executor reports "started <pid>" and "exited <wait status>" on fd 4.

const (
	commandExecutorEnv  = "MESOSTEST_COMMAND_EXECUTOR"
	commandExecutorName = "mesos-executor"
	// launcherDir is the --launcher_dir the agent passes (informational).
	launcherDir = "/usr/libexec/mesos"
)

// executorSpec is what the agent tells the executor about the task.
type executorSpec struct {
	TaskID string   `json:"task_id"`
	Shell  bool     `json:"shell"`
	Value  *string  `json:"value,omitempty"`
	Args   []string `json:"arguments,omitempty"`
	Env    []string `json:"env"`
	Dir    string   `json:"dir"`
}

// selfExecutable is this program, to start again as the executor:
// /proc/self/exe, which names the running binary even after its file was
// replaced or deleted (a rebuilt test binary, an upgraded playground).
var selfExecutable, selfExecutableErr = "/proc/self/exe", checkSelfExecutable()

func checkSelfExecutable() error {
	_, err := os.Stat("/proc/self/exe")
	return err
}

func init() {
	if os.Getenv(commandExecutorEnv) != "" && filepath.Base(os.Args[0]) == commandExecutorName {
		// A raw exit: no deferred runtime work (the race detector would
		// sleep a second at exit).
		syscall.Exit(commandExecutorMain())
	}
}

// commandExecutorMain is the executor process.
func commandExecutorMain() int {
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	specFile := os.NewFile(3, "spec")
	events := os.NewFile(4, "events")
	if specFile == nil || events == nil {
		fmt.Fprintln(os.Stderr, "mesos-executor (mesostest): no spec or events pipe")
		return 1
	}
	raw, err := io.ReadAll(specFile)
	specFile.Close()
	var spec executorSpec
	if err == nil {
		err = json.Unmarshal(raw, &spec)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mesos-executor (mesostest): bad task spec: %v\n", err)
		return 1
	}
	if spec.Value == nil {
		// executor.cpp CHECKs that the command has a value: the executor
		// aborts and the agent reports the executor's termination.
		what := "Executable"
		if spec.Shell {
			what = "Shell command"
		}
		fmt.Fprintf(os.Stderr, "Check failed: command.has_value() %s of task '%s' is not specified\n", what, spec.TaskID)
		signal.Reset(syscall.SIGABRT)
		_ = syscall.Kill(os.Getpid(), syscall.SIGABRT)
		return 134
	}
	cmd := &exec.Cmd{Env: spec.Env, Dir: spec.Dir, Stdin: nil, Stdout: os.Stdout, Stderr: os.Stderr,
		// The command executor starts the task in a new session.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if spec.Shell {
		cmd.Path, cmd.Args = "/bin/sh", []string{"sh", "-c", *spec.Value}
	} else {
		cmd.Args = spec.Args
		if len(cmd.Args) == 0 {
			cmd.Args = []string{*spec.Value}
		}
		cmd.Path = resolveExecutable(*spec.Value, spec.Env, spec.Dir)
	}
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		// mesos-containerizer launch reports a failed exec and exits 1:
		// the command executor sees its task exit with status 1.
		fmt.Fprintf(os.Stderr, "Failed to execute '%s': %v\n", *spec.Value, unwrapExecError(err))
		fmt.Fprintf(events, "started 0\nexited %d\n", 1<<8)
		return 0
	}
	fmt.Fprintf(events, "started %d\n", cmd.Process.Pid)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-terms:
				// A SIGTERM sent to the executor goes to the task.
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			case <-done:
				return
			}
		}
	}()
	_ = cmd.Wait()
	close(done)
	status := 0
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		status = int(ws)
	}
	fmt.Fprintf(events, "exited %d\n", status)
	return 0
}

func unwrapExecError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// resolveExecutable finds a command the way execvp does: a name with a
// slash is a path (relative to the working directory), a bare name is
// looked up in the PATH of the task's environment.
func resolveExecutable(name string, env []string, dir string) string {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			return filepath.Join(dir, name)
		}
		return name
	}
	if found, err := lookPathIn(name, env); err == nil {
		return found
	}
	return name
}

// executorEvents reads the executor's reports.
type executorEvents struct {
	r *bufio.Reader
}

// next returns the next report ("started", pid) / ("exited", status); ok is
// false when the executor went away without saying more.
func (e *executorEvents) next() (kind string, n int, ok bool) {
	line, err := e.r.ReadString('\n')
	if err != nil {
		return "", 0, false
	}
	fields := strings.Fields(line)
	if len(fields) != 2 {
		return "", 0, false
	}
	n, err = strconv.Atoi(fields[1])
	if err != nil {
		return "", 0, false
	}
	return fields[0], n, true
}
