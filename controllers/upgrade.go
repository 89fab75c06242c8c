package controllers

import (
	"fmt"
	"regexp"
	"strconv"
)

// The version skew the operator allows when spec.version changes, against status.version
// (the version every server runs): any release of the same Kubernetes minor, up or down
// (a patch rollback), or the next minor up. Kubernetes upgrades a control plane one minor
// at a time, and nothing downgrades its storage across a minor, so a minor skipped or
// undone is refused: the cluster keeps running what it runs, and Stalled says why. The
// order of a rollout (servers first) keeps agents from running a newer kubelet than the
// servers. The API server refuses the same skew against the previous spec.version
// (the CRD's transition rule); this check also covers two quick edits in a row.

var k3sVersion = regexp.MustCompile(`^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$`)

// minorOf is the Kubernetes major and minor of a K3s version.
func minorOf(v string) (major, minor int, ok bool) {
	m := k3sVersion.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

// versionSkew explains why moving the servers from version from to version to is refused,
// or is "" when it is allowed (or nothing runs yet).
func versionSkew(from, to string) string {
	if from == "" || from == to {
		return ""
	}
	fMajor, fMinor, ok1 := minorOf(from)
	tMajor, tMinor, ok2 := minorOf(to)
	switch {
	case !ok1 || !ok2:
		return fmt.Sprintf("spec.version %s: cannot compare it with the running %s", to, from)
	case tMajor != fMajor:
		return fmt.Sprintf("spec.version %s changes the Kubernetes major version of the running %s; the cluster keeps running %s", to, from, from)
	case tMinor > fMinor+1:
		return fmt.Sprintf("spec.version %s skips Kubernetes minor versions: the servers run %s; upgrade one minor at a time (to v%d.%d.x first); the cluster keeps running %s", to, from, fMajor, fMinor+1, from)
	case tMinor < fMinor:
		return fmt.Sprintf("spec.version %s would downgrade Kubernetes %d.%d to %d.%d, which its storage does not support; only patch releases of %d.%d can be rolled back to; the cluster keeps running %s", to, fMajor, fMinor, tMajor, tMinor, fMajor, fMinor, from)
	}
	return ""
}
