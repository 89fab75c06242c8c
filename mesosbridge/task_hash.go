package mesosbridge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// specHashVersion names the projection below. Changing what the projection holds or how
// it is encoded changes every task's hash, which rolls every task of every cluster once:
// bump the version deliberately, never as a side effect of a new Go field.
const specHashVersion = "v1"

// hashProjection is an explicit list of what shapes a running task. TaskSpec may gain
// fields without changing any hash; a field enters the hash only when it is added here,
// and omitempty keeps a new zero-valued field out of the encoding, so tasks launched
// before it existed keep their hash. Left out on purpose:
//   - the name, role, index and plan order: which task, and when it starts, not what runs;
//   - where the task goes (Volume.AgentID);
//   - BootstrapEnv: read only when the task's data is empty (a first start), so a change
//     is no reason to replace a running task;
//   - secret values: the hash is visible in the master's /state and a digest of a weak
//     secret could be brute-forced. Only secret names count, so rotating a secret's value
//     is not a rollout by itself.
type hashProjection struct {
	Version     string            `json:"v"`
	CPUs        float64           `json:"cpus,omitempty"`
	MemMiB      float64           `json:"mem,omitempty"`
	DiskMiB     float64           `json:"disk,omitempty"`
	Ports       []string          `json:"ports,omitempty"`
	Constraints []string          `json:"constraints,omitempty"`
	Container   *containerHash    `json:"container,omitempty"`
	Command     string            `json:"command,omitempty"`
	Fetch       []fetchHash       `json:"fetch,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	SecretNames []string          `json:"secrets,omitempty"`
	HealthCheck *healthHash       `json:"health,omitempty"`
	NetworkMode NetworkMode       `json:"network,omitempty"`
	NetworkName string            `json:"networkName,omitempty"`
	VolumeMiB   float64           `json:"volume,omitempty"`
	VolumePath  string            `json:"volumePath,omitempty"`
	KillGrace   time.Duration     `json:"killGrace,omitempty"`
}

// The parts of the projection, as explicit as the whole.
type containerHash struct {
	Type       ContainerType `json:"type,omitempty"`
	Image      string        `json:"image,omitempty"`
	Privileged bool          `json:"privileged,omitempty"`
	Tmpfs      []string      `json:"tmpfs,omitempty"`
}

type fetchHash struct {
	URL        string `json:"url"`
	Executable bool   `json:"executable,omitempty"`
	Extract    bool   `json:"extract,omitempty"`
	OutputFile string `json:"output,omitempty"`
}

type healthHash struct {
	Protocol            HealthCheckProtocol `json:"protocol"`
	Port                string              `json:"port,omitempty"`
	Path                string              `json:"path,omitempty"`
	Delay               time.Duration       `json:"delay,omitempty"`
	Interval            time.Duration       `json:"interval,omitempty"`
	Timeout             time.Duration       `json:"timeout,omitempty"`
	GracePeriod         time.Duration       `json:"grace,omitempty"`
	ConsecutiveFailures int                 `json:"failures,omitempty"`
}

// SpecHash is a stable digest of what a task runs (see hashProjection), for the label the
// rollout compares. encoding/json writes struct fields in declaration order and map keys
// sorted, which makes the encoding canonical.
func SpecHash(spec TaskSpec) string {
	p := hashProjection{
		Version:     specHashVersion,
		CPUs:        spec.Resources.CPUs,
		MemMiB:      spec.Resources.MemMiB,
		DiskMiB:     spec.Resources.DiskMiB,
		Ports:       spec.Ports,
		Command:     spec.Command,
		Env:         spec.Env,
		SecretNames: sortedKeys(spec.Secrets),
		NetworkMode: spec.NetworkMode,
		NetworkName: spec.NetworkName,
		KillGrace:   spec.KillGracePeriod,
	}
	for _, c := range spec.Constraints {
		p.Constraints = append(p.Constraints, c.Field+":"+string(c.Operator)+":"+c.Value)
	}
	if c := spec.Container; c.Type != ContainerNone {
		p.Container = &containerHash{Type: c.Type, Image: c.Image, Privileged: c.Privileged, Tmpfs: c.Tmpfs}
	}
	for _, f := range spec.Fetch {
		p.Fetch = append(p.Fetch, fetchHash{URL: f.URL, Executable: f.Executable, Extract: f.Extract, OutputFile: f.OutputFile})
	}
	if h := spec.HealthCheck; h != nil {
		p.HealthCheck = &healthHash{Protocol: h.Protocol, Port: h.Port, Path: h.Path, Delay: h.Delay, Interval: h.Interval,
			Timeout: h.Timeout, GracePeriod: h.GracePeriod, ConsecutiveFailures: h.ConsecutiveFailures}
	}
	if v := spec.Volume; v != nil {
		p.VolumeMiB, p.VolumePath = v.SizeMiB, v.ContainerPath
	}
	canonical, err := json.Marshal(p)
	if err != nil {
		panic("mesosbridge: the hash projection is not JSON-encodable: " + err.Error()) // plain data: cannot happen
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:8])
}
