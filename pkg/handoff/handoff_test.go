package handoff

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestExecStart(t *testing.T) {
	tests := []struct {
		description string
		argv        []string
		copyTo      string
		want        []string
		wantErr     bool
	}{
		{"unshim runs the copy", []string{"unshim", "node", "migrate"}, "/var/lib/unshim/bin/unshim", []string{"/var/lib/unshim/bin/unshim", "node", "migrate"}, false},
		{"an absolute program as it is", []string{"/bin/sh", "-c", "true"}, "/var/lib/unshim/bin/unshim", []string{"/bin/sh", "-c", "true"}, false},
		{"unshim without a copy", []string{"unshim"}, "", nil, true},
		{"a relative program", []string{"sh", "-c", "true"}, "/x", nil, true},
		{"nothing", nil, "/x", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			got, err := ExecStart(tt.argv, tt.copyTo)
			if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ExecStart(%q, %q) = %q, %v; want %q (error: %v)", tt.argv, tt.copyTo, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestUnitName(t *testing.T) {
	for in, want := range map[string]string{"a": "a.service", "a.service": "a.service"} {
		if got := UnitName(in); got != want {
			t.Errorf("UnitName(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestProperties(t *testing.T) {
	got := map[string]any{}
	for _, p := range Properties("u.service", []string{"/bin/true"}) {
		got[p.Name] = p.Value.Value()
	}
	for name, want := range map[string]any{"Type": "exec", "CollectMode": "inactive-or-failed", "StandardOutput": "journal"} {
		if got[name] != want {
			t.Errorf("%s = %v; want %v", name, got[name], want)
		}
	}
	// ExecStart is a(sasb): path, argv, ignore-failure. Failures must count.
	v := reflect.ValueOf(got["ExecStart"])
	if v.Kind() != reflect.Slice || v.Len() != 1 || v.Index(0).Field(0).String() != "/bin/true" || v.Index(0).Field(2).Bool() {
		t.Errorf("ExecStart = %#v; want one command /bin/true whose failure counts", got["ExecStart"])
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := []byte("binary")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "bin", "unshim")
	// Twice: the second replaces the first.
	for range 2 {
		if err := CopyFile(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy holds %q, %v", got, err)
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, %v; want 0755", st.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
