package rules

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/unshim/unshim/pkg/check"
)

// Patterns of a script that drives Docker on the node.
var (
	// dockerCommand matches a docker or dockerd invocation as a command word.
	dockerCommand = regexp.MustCompile(`(?m)(?:^|[\s;&|()'"` + "`" + `/])dockerd?(?:\s+\S|\s*$|\s*[;&|)])`)
	// systemctlDocker matches systemctl/service acting on the docker unit.
	systemctlDocker = regexp.MustCompile(`(?m)\b(?:systemctl\s+(?:-\S+\s+)*(?:start|stop|restart|reload|enable|disable|kill|try-restart|reload-or-restart)\s+(?:\S+\s+)*docker(?:\.service|\.socket)?\b|service\s+docker\s+\w+)`)
	// daemonJSONWrite matches any use of Docker's daemon.json.
	daemonJSONWrite = regexp.MustCompile(`/etc/docker/daemon\.json`)
)

// dockerCLIRule reports privileged containers whose command drives Docker on the node.
type dockerCLIRule struct{}

func (dockerCLIRule) Meta() check.RuleMeta {
	return check.RuleMeta{ID: "docker-cli-privileged", Title: "Privileged container drives Docker on the node", Severity: check.SeverityHigh,
		Remedy: "Replace docker commands with crictl (images, ps, exec, logs) against /run/containerd/containerd.sock, " +
			"restarting containerd instead of docker, and node configuration in /etc/containerd (config.toml, certs.d) instead of /etc/docker/daemon.json."}
}

func privileged(c *corev1.Container) bool {
	return c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
}

// scriptMatch returns the line of a command or script that uses Docker, or "".
func scriptMatch(s string) string {
	if !strings.Contains(s, "docker") {
		return "" // every pattern below needs it: skip the regular expressions
	}
	for _, re := range []*regexp.Regexp{systemctlDocker, daemonJSONWrite, dockerCommand} {
		loc := re.FindStringIndex(s)
		if loc == nil {
			continue
		}
		start := strings.LastIndex(s[:loc[0]], "\n") + 1
		end := len(s)
		if nl := strings.Index(s[loc[1]:], "\n"); nl >= 0 {
			end = loc[1] + nl
		}
		line := strings.TrimSpace(s[start:end])
		if len(line) > 120 {
			line = line[:117] + "..."
		}
		return line
	}
	return ""
}

func (dockerCLIRule) Check(t *check.Target) []check.Hit {
	if t.PodSpec == nil {
		return nil
	}
	var hits []check.Hit
	eachContainer(t, func(ca containerAt) {
		if !privileged(ca.c) {
			return
		}
		for _, part := range []struct {
			name string
			args []string
		}{{"command", ca.c.Command}, {"args", ca.c.Args}} {
			for i, a := range part.args {
				if m := scriptMatch(a); m != "" {
					hits = append(hits, check.Hit{Container: ca.c.Name, Evidence: m, Field: fmt.Sprintf("%s.%s[%d]", ca.field(), part.name, i),
						Message: fmt.Sprintf("privileged container runs %q on the node", m)})
					break
				}
			}
		}
	})
	return hits
}
