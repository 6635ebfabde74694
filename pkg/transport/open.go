package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Spec says how to reach a node: the operator's --via and its companions.
type Spec struct {
	// Via is local, nsenter or ssh ("" is local).
	Via string
	// TargetPID is the node's init process, for nsenter.
	TargetPID int
	// SSH is the connection, for ssh; an empty Host asks NodeAddress.
	SSH SSHConfig
}

// Open reaches the node as spec says. nodeAddress gives the node's address
// when spec.SSH.Host is empty (the Node's InternalIP).
func Open(ctx context.Context, spec Spec, nodeAddress func(context.Context) (string, error)) (Transport, error) {
	switch spec.Via {
	case "local", "":
		if os.Geteuid() != 0 {
			return nil, errors.New("--via local changes this machine's services and files: run as root on the node")
		}
		return &Local{}, nil
	case "nsenter":
		if spec.TargetPID <= 0 {
			return nil, errors.New("--via nsenter needs --target-pid")
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(spec.TargetPID) + "/root"); err != nil {
			return nil, fmt.Errorf("--target-pid %d: %w", spec.TargetPID, err)
		}
		return &Nsenter{PID: spec.TargetPID}, nil
	case "ssh":
		cfg := spec.SSH
		if cfg.Host == "" {
			addr, err := nodeAddress(ctx)
			if err != nil {
				return nil, err
			}
			cfg.Host = addr
		}
		return DialSSH(ctx, cfg)
	}
	return nil, fmt.Errorf("--via %q: want local, ssh or nsenter (pod: migrate node only)", spec.Via)
}
