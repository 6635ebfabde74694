package journal

import (
	"encoding/json"
	"testing"
)

func FuzzDecode(f *testing.F) {
	j := New("node-1", "containerd")
	j.Mark("drain", Done, nil)
	j.Backups = []Backup{{Path: "/etc/containerd/config.toml", Absent: true}}
	seed, _ := json.Marshal(j)
	f.Add(seed)
	f.Add([]byte(`{"version":1,"node":"n","phases":[{"name":"x","state":"running"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Decode(data, "fuzz")
		if err != nil {
			return
		}
		// What decodes must survive a round trip unchanged.
		again, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(again, "again"); err != nil {
			t.Fatalf("re-encoded journal does not decode: %v", err)
		}
	})
}

// A journal saved before any phase stored a value decodes with a usable
// Values map (phases write into it on resume).
func TestDecodedJournalTakesValues(t *testing.T) {
	data, _ := json.Marshal(New("node-1", "containerd"))
	j, err := Decode(data, "t")
	if err != nil {
		t.Fatal(err)
	}
	j.Values["x"] = "y" // panics on a nil map
}
