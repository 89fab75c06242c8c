package gitops

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

// GitServer is a bare Git repository served read-only over smart HTTP on 127.0.0.1 by
// `git http-backend` (through net/http/cgi), with a working clone that commits and pushes
// into it. Flux's source-controller clones URL like any Git server.
type GitServer struct {
	// URL is the repository's clone URL, http://127.0.0.1:PORT/repo.git.
	URL string
	// Branch is the branch commits go to: main.
	Branch string

	bare, work, home string
	server           *httptest.Server
	requests         atomic.Int64
}

// NewGitServer creates an empty repository in t.TempDir() and serves it until the test
// ends. It fails the test when git is missing.
func NewGitServer(t testing.TB) *GitServer {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is not on PATH (install the Debian package git): %v", err)
	}
	execPath, err := exec.Command(gitPath, "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git-http-backend is missing: %v", err)
	}
	dir := t.TempDir()
	g := &GitServer{
		Branch: "main",
		bare:   filepath.Join(dir, "repo.git"),
		work:   filepath.Join(dir, "work"),
		home:   filepath.Join(dir, "home"),
	}
	if err := os.Mkdir(g.home, 0o755); err != nil {
		t.Fatal(err)
	}
	g.git(t, dir, "init", "--quiet", "--bare", "--initial-branch="+g.Branch, g.bare)
	g.git(t, dir, "init", "--quiet", "--initial-branch="+g.Branch, g.work)
	g.git(t, g.work, "remote", "add", "origin", g.bare)

	backendHandler := &cgi.Handler{
		Path: backend,
		Dir:  dir,
		// GIT_HTTP_EXPORT_ALL serves the repository without a git-daemon-export-ok file;
		// receive-pack stays off (http-backend only enables it for authenticated users),
		// so the server is read-only.
		Env: append(g.gitEnv(), "GIT_PROJECT_ROOT="+dir, "GIT_HTTP_EXPORT_ALL=1"),
	}
	g.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		backendHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(g.server.Close)
	g.URL = g.server.URL + "/repo.git"
	return g
}

// Requests is how many HTTP requests the server has answered, e.g. to see how often
// source-controller polls.
func (g *GitServer) Requests() int64 { return g.requests.Load() }

// Commit writes files (path relative to the repository's top → content), removes the
// paths in remove, commits everything with message msg, pushes it to the served branch
// and returns the commit's SHA-1. Flux reports it as revision "main@sha1:<SHA>".
func (g *GitServer) Commit(t testing.TB, msg string, files map[string]string, remove ...string) string {
	t.Helper()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := filepath.Join(g.work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(files[p]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range remove {
		g.git(t, g.work, "rm", "--quiet", "-r", "--", p)
	}
	g.git(t, g.work, "add", "--all")
	g.git(t, g.work, "commit", "--quiet", "--allow-empty", "-m", msg)
	g.git(t, g.work, "push", "--quiet", "origin", "HEAD:refs/heads/"+g.Branch)
	return strings.TrimSpace(g.git(t, g.work, "rev-parse", "HEAD"))
}

// Revision is how Flux names a commit of the branch: "main@sha1:<SHA>".
func (g *GitServer) Revision(sha string) string { return g.Branch + "@sha1:" + sha }

// gitEnv isolates git from the machine's and the user's configuration.
func (g *GitServer) gitEnv() []string {
	return []string{
		"HOME=" + g.home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=gitops test", "GIT_AUTHOR_EMAIL=gitops-test@example.invalid",
		"GIT_COMMITTER_NAME=gitops test", "GIT_COMMITTER_EMAIL=gitops-test@example.invalid",
	}
}

func (g *GitServer) git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), g.gitEnv()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
