//go:build !linux

package nodecheck

import (
	"fmt"
	"runtime"
)

// dumpUnixSocketsIn needs Linux's sock_diag: elsewhere the socket check reports that it did not run.
func dumpUnixSocketsIn(string) ([]unixSocket, error) {
	return nil, fmt.Errorf("listing Docker socket clients is not supported on %s", runtime.GOOS)
}

func dumpUnixSockets() ([]unixSocket, error) { return dumpUnixSocketsIn("") }
