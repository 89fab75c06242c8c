package mesosbridge

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// newTaskID mints <name>.<16 hex digits>. 64 random bits make a collision within one
// framework's life (a few thousand launches) practically impossible, and unlike a counter
// they need no state that would have to survive an operator restart.
func newTaskID(name string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("mesosbridge: crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return name + "." + hex.EncodeToString(b[:])
}

// taskNameFromID recovers the task name from a task ID, so tasks reported by a
// reconciliation after a restart can be adopted under their names. Task names never
// contain dots (they are DNS labels), so the last dot separates the random suffix.
func taskNameFromID(id string) (string, bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 || i == len(id)-1 {
		return "", false
	}
	name := id[:i]
	return name, dnsLabel.MatchString(name)
}
