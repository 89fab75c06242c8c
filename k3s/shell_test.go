package k3s

import (
	"os/exec"
	"strings"
	"testing"
)

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"plain", "plain"},
		{"--tls-san=k3s.example.com", "--tls-san=k3s.example.com"},
		{"node-role.kubernetes.io/control-plane=true:NoSchedule", "node-role.kubernetes.io/control-plane=true:NoSchedule"},
		{"has space", "'has space'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"a;rm -rf /", "'a;rm -rf /'"},
		{"`id`", "'`id`'"},
		{"line\nbreak", "'line\nbreak'"},
		{"*", "'*'"},
		{"~", "'~'"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestShellQuoteRoundTrip has a real shell parse the quoted words back, so the quoting is
// proven against the shell rather than against our expectations of it.
func TestShellQuoteRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	words := []string{"", "a b", "it's", "$HOME", "`id`", `back\slash`, "\"dq\"", "semi;colon", "new\nline", "*", "-n", "ünïcode"}
	script := `for w in ` + shellJoin(words) + `; do printf '%s\0' "$w"; done`
	out, err := exec.Command(sh, "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(words) {
		t.Fatalf("got %d words %q, want %d", len(got), got, len(words))
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("word %d: got %q, want %q", i, got[i], words[i])
		}
	}
}
