// Command runcwrap is the lab's OCI runtime on machines without
// CAP_SYS_RESOURCE: before `create` or `run` it removes process.oomScoreAdj
// and linux.resources (all but devices) from the bundle's config.json, and
// before `exec` it removes oomScoreAdj from the process file, then it
// executes runc with the same arguments. Nothing may lower oom_score_adj or
// use cgroup controllers there, so runc would fail on both. It also drops
// from process.capabilities every capability outside its own bounding set
// (CAP_SYS_RESOURCE there): a privileged container asks for all of them, and
// runc would fail with "unable to apply caps".
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const runc = "/usr/sbin/runc"

func main() {
	if err := rewrite(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
		os.Exit(1)
	}
	if err := syscall.Exec(runc, append([]string{runc}, os.Args[1:]...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: exec %s: %v\n", runc, err)
		os.Exit(1)
	}
}

// rewrite edits the files the runc command line names.
func rewrite(args []string) error {
	var cmd, bundle, process string
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func(name string) (string, bool) {
			if a == "--"+name || a == "-"+name {
				if i+1 < len(args) {
					i++
					return args[i], true
				}
				return "", false
			}
			for _, p := range []string{"--" + name + "=", "-" + name + "="} {
				if len(a) > len(p) && a[:len(p)] == p {
					return a[len(p):], true
				}
			}
			return "", false
		}
		if v, ok := val("bundle"); ok {
			bundle = v
			continue
		}
		if v, ok := val("b"); ok {
			bundle = v
			continue
		}
		if v, ok := val("process"); ok {
			process = v
			continue
		}
		if v, ok := val("p"); ok {
			process = v
			continue
		}
		if cmd == "" && (a == "create" || a == "run" || a == "exec") {
			cmd = a
		}
	}
	switch cmd {
	case "create", "run":
		if bundle == "" {
			bundle = "."
		}
		return edit(filepath.Join(bundle, "config.json"), func(spec map[string]any) {
			if p, ok := spec["process"].(map[string]any); ok {
				delete(p, "oomScoreAdj")
				dropCaps(p)
			}
			if l, ok := spec["linux"].(map[string]any); ok {
				if r, ok := l["resources"].(map[string]any); ok {
					kept := map[string]any{}
					if d, ok := r["devices"]; ok {
						kept["devices"] = d
					}
					l["resources"] = kept
				}
			}
		})
	case "exec":
		if process == "" {
			return nil
		}
		return edit(process, func(p map[string]any) {
			delete(p, "oomScoreAdj")
			dropCaps(p)
		})
	}
	return nil
}

func edit(path string, change func(map[string]any)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	change(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// capNames are the capabilities by number (linux/capability.h).
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// dropCaps removes from the process's capability sets those outside this
// process's bounding set; it leaves them alone when that set is unreadable.
func dropCaps(p map[string]any) {
	caps, ok := p["capabilities"].(map[string]any)
	if !ok {
		return
	}
	missing := map[string]bool{}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(status), "\n") {
		hex, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		bnd, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return
		}
		for i, name := range capNames {
			if bnd&(1<<uint(i)) == 0 {
				missing["CAP_"+name] = true
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := []any{}
		for _, c := range list {
			if name, ok := c.(string); !ok || !missing[name] {
				kept = append(kept, c)
			}
		}
		caps[set] = kept
	}
}
