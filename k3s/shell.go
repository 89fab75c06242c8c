package k3s

import "strings"

// shellQuote quotes s as one POSIX shell word. Words made only of characters no shell
// treats specially stay bare, so generated command lines remain readable; everything else
// is single-quoted; an embedded single quote closes the quoting, is escaped with a
// backslash and the quoting reopens.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if isShellSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isShellSafe(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-_./:=,+@%", r):
		default:
			return false
		}
	}
	return true
}

// shellJoin quotes every word and joins them with spaces.
func shellJoin(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	return strings.Join(quoted, " ")
}
