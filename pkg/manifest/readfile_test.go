package manifest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestReadInto: files are read whole into the worker's buffer whatever
// their size against it, and errors name the file.
func TestReadInto(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("apiVersion: v1\n"), 5000)
	files := map[string][]byte{"empty.yaml": nil, "small.yaml": []byte("kind: Pod\n"), "big.yaml": big}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		buf  []byte
	}{
		{"no buffer", nil},
		{"small buffer", make([]byte, 0, 4)},
		{"large buffer", make([]byte, 0, 1<<20)},
	}
	for _, tt := range tests {
		for name, want := range files {
			got, err := readInto(filepath.Join(dir, name), tt.buf)
			if err != nil {
				t.Fatalf("%s, %s: %v", tt.name, name, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %s: read %d bytes, want %d", tt.name, name, len(got), len(want))
			}
		}
	}
	if _, err := readInto(filepath.Join(dir, "missing.yaml"), nil); !errors.Is(err, fs.ErrNotExist) || !bytes.Contains([]byte(err.Error()), []byte("missing.yaml")) {
		t.Errorf("missing file: %v, want a not-exist error naming it", err)
	}
	if _, err := readInto(dir, nil); err == nil {
		t.Errorf("directory read without an error")
	}
}
