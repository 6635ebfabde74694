package nodeswitch

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unshim/unshim/pkg/migrate/phases"
)

func TestRunSettingsRoundTrip(t *testing.T) {
	in := RunSettings{Settings: phases.Settings{Target: "containerd", Allow: []string{"a", "b"}, Force: true, DeleteEmptyDirData: true,
		DrainTimeout: 3 * time.Minute, VerifyTimeout: time.Minute, InstallCommand: []string{"dnf", "install", "-y", "containerd"}},
		NoRollback: true, ContainerdVersion: "1.7.24"}
	data, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeRunSettings(data, "s.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got  %+v\n want %+v", out, in)
	}
}

func TestDecodeRunSettingsRefusesBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"not json":         `{`,
		"unknown field":    `{"target":"containerd","colour":1}`,
		"bad target":       `{"target":"podman"}`,
		"negative timeout": `{"target":"containerd","drainTimeout":-5}`,
	} {
		if _, err := DecodeRunSettings([]byte(in), "s.json"); err == nil || !strings.Contains(err.Error(), "s.json") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
