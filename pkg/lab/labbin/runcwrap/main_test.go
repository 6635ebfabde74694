package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestRewrite(t *testing.T) {
	spec := `{"ociVersion":"1.0.2","process":{"args":["/pause"],"oomScoreAdj":-998},` +
		`"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}],"cpu":{"shares":2}}}}`
	proc := `{"args":["sh"],"oomScoreAdj":-998}`
	tests := []struct {
		name string
		args func(bundle, process string) []string
		file string
		want string
	}{
		{
			name: "docker create",
			args: func(b, _ string) []string {
				return []string{"--root", "/run/runc", "--log", "/x/log.json", "--log-format", "json", "create", "--bundle", b, "--pid-file", "/x/pid", "id"}
			},
			file: "config.json",
			want: `{"ociVersion":"1.0.2","process":{"args":["/pause"]},"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}`,
		},
		{
			name: "bundle with equals",
			args: func(b, _ string) []string { return []string{"run", "--bundle=" + b, "id"} },
			file: "config.json",
			want: `{"ociVersion":"1.0.2","process":{"args":["/pause"]},"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}`,
		},
		{
			name: "exec process file",
			args: func(_, p string) []string { return []string{"--root", "/r", "exec", "--process", p, "--detach", "id"} },
			file: "process.json",
			want: `{"args":["sh"]}`,
		},
		{
			name: "other commands leave files alone",
			args: func(b, _ string) []string { return []string{"state", "id", "--bundle", b} },
			file: "config.json",
			want: spec,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(spec), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "process.json"), []byte(proc), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := rewrite(tt.args(dir, filepath.Join(dir, "process.json"))); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s = %s, want %s", tt.file, got, tt.want)
			}
		})
	}
}
