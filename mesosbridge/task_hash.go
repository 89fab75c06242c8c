package mesosbridge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// SpecHash is a stable digest of everything in a TaskSpec that shapes the running task, for
// the spec-hash label the rollout compares. Left out on purpose:
//   - SpecHash itself;
//   - Order and Volume.AgentID, which say when and where to launch, not what;
//   - secret values: the label is visible in the master's /state and a digest of a weak
//     secret could be brute-forced. Only the secret keys count. Rotating a secret's value
//     is therefore not a rollout by itself; the controller folds a version of the secret
//     into Env or a label if it ever needs one.
//
// encoding/json writes struct fields in declaration order and map keys sorted, which makes
// the encoding canonical for a given version of TaskSpec; adding a field changes every
// hash once, which rolls the tasks once, deliberately.
func SpecHash(spec TaskSpec) string {
	spec.SpecHash = ""
	spec.Order = 0
	if spec.Volume != nil {
		v := *spec.Volume
		v.AgentID = ""
		spec.Volume = &v
	}
	keys := sortedKeys(spec.Secrets)
	spec.Secrets = nil
	canonical, err := json.Marshal(struct {
		Spec       TaskSpec
		SecretKeys []string
	}{spec, keys})
	if err != nil {
		panic("mesosbridge: TaskSpec is not JSON-encodable: " + err.Error()) // plain data: cannot happen
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:8])
}
