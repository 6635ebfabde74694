package nodeswitch

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodeplan"
)

// RunSettings are all of an operator's choices for one switch, as one
// value: the agent pod hands them to the node as a JSON file (`unshim node
// migrate --settings FILE`) instead of rebuilding them as flags.
type RunSettings struct {
	phases.Settings
	// NoRollback leaves a failed run resumable instead of undoing it.
	NoRollback bool `json:"noRollback,omitempty"`
	// ContainerdVersion overrides what `containerd --version` says.
	ContainerdVersion string `json:"containerdVersion,omitempty"`
	// SkipPhases are phases not to run.
	SkipPhases []string `json:"skipPhases,omitempty"`
}

// Encode is the settings as JSON.
func (s RunSettings) Encode() ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// DecodeRunSettings reads settings written by Encode; name is used in errors.
// Unknown fields are refused: settings of a newer unshim must not be half read.
func DecodeRunSettings(data []byte, name string) (RunSettings, error) {
	var s RunSettings
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return RunSettings{}, fmt.Errorf("switch settings %s: %w", name, err)
	}
	if s.Target != nodeplan.Containerd && s.Target != nodeplan.CRIDockerd {
		return RunSettings{}, fmt.Errorf("switch settings %s: target %q: want %s or %s", name, s.Target, nodeplan.Containerd, nodeplan.CRIDockerd)
	}
	if s.DrainTimeout < 0 || s.VerifyTimeout < 0 {
		return RunSettings{}, fmt.Errorf("switch settings %s: a timeout cannot be negative", name)
	}
	return s, nil
}
