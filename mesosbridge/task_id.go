package mesosbridge

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
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

// TaskName is the stable name of a role's index-th task: <role>-<index>. Task IDs start
// with it, so tasks reported after a restart are recognised by their IDs alone.
func TaskName(role TaskRole, index int) string {
	return string(role) + "-" + strconv.Itoa(index)
}

// ParseTaskName splits a task name (see TaskName) into role and index.
func ParseTaskName(name string) (TaskRole, int, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, false
	}
	index, err := strconv.Atoi(name[i+1:])
	if err != nil || index < 0 || strconv.Itoa(index) != name[i+1:] || !dnsLabel.MatchString(name[:i]) {
		return "", 0, false
	}
	return TaskRole(name[:i]), index, true
}
