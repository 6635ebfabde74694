package nodelock

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

func TestDeadHere(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, tc := range []struct {
		holder string
		want   bool
	}{
		{Holder("unshim"), false}, // this very process
		{fmt.Sprintf("unshim@%s/%d", host, dead.Process.Pid), true},
		{fmt.Sprintf("unshim-rollout@%s/%d", host, dead.Process.Pid), false}, // another kind
		{fmt.Sprintf("unshim@elsewhere/%d", dead.Process.Pid), false},        // another machine
		{fmt.Sprintf("unshim@%s/x", host), false},
		{"", false},
	} {
		if got := DeadHere("unshim", tc.holder); got != tc.want {
			t.Errorf("DeadHere(unshim, %q) = %t, want %t", tc.holder, got, tc.want)
		}
	}
}
