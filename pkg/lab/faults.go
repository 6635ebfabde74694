package lab

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// StopProcess stops the lab process called name (kube-apiserver, etcd, ...)
// as an outage would, and keeps its record so RestartProcess can start it
// again.
func (l *Lab) StopProcess(name string) error {
	for _, p := range l.Processes {
		if p.Name == name {
			if err := stopProcess(p.PID, p.Name); err != nil {
				return fmt.Errorf("stop %s: %w", name, err)
			}
			l.reapExited()
			return nil
		}
	}
	return fmt.Errorf("the lab has no process %s", name)
}

// RestartProcess starts the stopped process name again with its recorded
// program and arguments; for the apiserver it waits until it answers.
func (l *Lab) RestartProcess(ctx context.Context, name string) error {
	for _, p := range l.Processes {
		if p.Name != name {
			continue
		}
		if processAlive(p.PID, p.Name) {
			return fmt.Errorf("%s is running (pid %d)", name, p.PID)
		}
		if p.Bin == "" {
			return fmt.Errorf("%s was recorded without its command: restart the lab", name)
		}
		if err := l.launch(name, p.Bin, p.Args, os.O_APPEND); err != nil {
			return err
		}
		if name == "kube-apiserver" {
			return l.waitReady(ctx, 90*time.Second)
		}
		return nil
	}
	return fmt.Errorf("the lab has no process %s", name)
}

// reapExited waits for the children of this process that have exited.
func (l *Lab) reapExited() {
	var keep = l.cmds[:0]
	for _, c := range l.cmds {
		if _, err := procStartTime(c.Process.Pid); err != nil {
			_ = c.Wait()
			continue
		}
		keep = append(keep, c)
	}
	l.cmds = keep
}

// PowerOff cuts a node's power: its init and with it every process of the
// node are killed at once, with no shutdown; its disk (the root directory)
// stays as it was at that instant.
func (l *Lab) PowerOff(n *Node) error {
	n.findLeader()
	if n.leaderAlive() {
		_ = syscall.Kill(n.LeaderPID, syscall.SIGKILL)
		waitGone(n.leaderAlive, 10*time.Second)
	}
	if n.nspawnAlive() {
		_ = syscall.Kill(-n.PID, syscall.SIGKILL)
		_ = syscall.Kill(n.PID, syscall.SIGKILL)
		waitGone(n.nspawnAlive, 10*time.Second)
	}
	l.reapExited()
	if n.Alive() {
		return fmt.Errorf("node %s still runs after its power was cut", n.Name)
	}
	return nil
}

// Boot starts a powered-off node again from its disk and waits until its
// systemd has booted (whatever units fail: after a fault Docker may well be
// disabled). The node's pids change: take its Transport anew.
func (l *Lab) Boot(ctx context.Context, n *Node) error {
	if n.Alive() {
		return fmt.Errorf("node %s is running", n.Name)
	}
	n.LeaderPID, n.LeaderStart = 0, 0
	if err := l.bootMachine(ctx, n); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		out, err := n.Run(ctx, "systemctl", "is-system-running", "--wait")
		state := strings.TrimSpace(string(out))
		if err == nil || state == "degraded" {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node %s did not boot again (state %q): %w", n.Name, state, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
