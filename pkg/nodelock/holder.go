package nodelock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Holder names a process of this machine as a lock holder: "KIND@HOST/PID"
// (kind "unshim" for a node's switch, "unshim-rollout" for a driver).
func Holder(kind string) string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s@%s/%d", kind, h, os.Getpid())
}

// DeadHere says whether holder names a process of this machine (made by
// Holder with kind) that no longer exists: a lock it held need not be
// waited out.
func DeadHere(kind, holder string) bool {
	host, _ := os.Hostname()
	rest, ok := strings.CutPrefix(holder, kind+"@"+host+"/")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(rest)
	if err != nil || pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	return errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}
