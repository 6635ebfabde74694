package check

import (
	"hash/maphash"
	"testing"
)

// TestFindingIndexCollisions: two keys with the same hash stay apart. The
// test forces every key onto one hash by recording the first key's hash
// for the second in advance.
func TestFindingIndexCollisions(t *testing.T) {
	a := Finding{Object: ObjectRef{Kind: "Pod", Name: "a"}, Rule: "r"}
	b := Finding{Object: ObjectRef{Kind: "Pod", Name: "b"}, Rule: "r"}
	x := newFindingIndex()
	var fs []Finding
	add := func(f Finding) (int, bool) {
		i, seen := x.find(fs, &f)
		if !seen {
			fs = append(fs, f)
		}
		return i, seen
	}
	if i, seen := add(a); i != 0 || seen {
		t.Fatalf("first a: %d %v", i, seen)
	}
	// Make b's hash the one a has.
	var h maphash.Hash
	h.SetSeed(x.seed)
	for _, s := range [...]string{b.Object.Kind, b.Object.Namespace, b.Object.Name, b.Rule, b.Container, b.Evidence, b.File} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	x.byHash[h.Sum64()] = 0
	if i, seen := add(b); i != 1 || seen {
		t.Fatalf("b colliding with a: %d %v, want a new finding at 1", i, seen)
	}
	if i, seen := add(b); i != 1 || !seen {
		t.Fatalf("b again: %d %v, want 1 seen", i, seen)
	}
	if i, seen := add(a); i != 0 || !seen {
		t.Fatalf("a again: %d %v, want 0 seen", i, seen)
	}
}
