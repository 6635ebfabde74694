package nodecheck

import (
	"bytes"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/nodefiles"
)

// CallerPlaces are the node paths searched for scripts, cron entries and
// units that call docker: files, or directories searched recursively.
var CallerPlaces = []string{
	"/etc/crontab", "/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly",
	"/var/spool/cron",
	"/etc/systemd/system", "/usr/local/lib/systemd/system",
	"/usr/local/bin", "/usr/local/sbin",
	"/etc/rc.local", "/etc/rc.d/rc.local",
	"/etc/cloud/cloud.cfg", "/etc/cloud/cloud.cfg.d", "/var/lib/cloud/instance/scripts", "/var/lib/cloud/instance/user-data.txt", "/var/lib/cloud/scripts",
}

// dockerCall matches a command line that runs the docker CLI (or
// docker-compose), talks to dockerd's socket or manages its service.
var dockerCall = regexp.MustCompile(`(^|[\s;&|(` + "`" + `'"=/])(docker(-compose)?)(\s|$|;|\))|docker\.sock|(systemctl|service)\s+\S*\s*docker(\.service|\.socket)?(\s|$)`)

// Docker's own units are Docker, not callers of it.
var ownUnits = map[string]bool{"docker.service": true, "docker.socket": true, "docker.service.d": true, "docker.socket.d": true}

const maxScriptSize = 1 << 20

func (c *checker) callers() error {
	var files []string
	for _, place := range CallerPlaces {
		root := nodefiles.Rel(place)
		st, err := fs.Stat(c.o.FS, root)
		if err != nil {
			continue
		}
		if !st.IsDir() {
			if st.Mode().IsRegular() {
				files = append(files, place)
			}
			continue
		}
		_ = fs.WalkDir(c.o.FS, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && ownUnits[d.Name()] {
				return fs.SkipDir
			}
			if !d.Type().IsRegular() || ownUnits[d.Name()] {
				return nil // symlinks inside the trees are not followed
			}
			files = append(files, "/"+p)
			return nil
		})
	}
	sort.Strings(files)
	for _, f := range files {
		c.res.Scanned["File"]++
		data, err := fs.ReadFile(c.o.FS, nodefiles.Rel(f))
		if err != nil || len(data) > maxScriptSize || bytes.IndexByte(data, 0) >= 0 {
			continue // unreadable, big or binary
		}
		kind := placeKind(f)
		for i, line := range strings.Split(string(data), "\n") {
			t := strings.TrimSpace(line)
			if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
				continue
			}
			if !dockerCall.MatchString(t) {
				continue
			}
			sev := check.SeverityHigh
			if kind == "script" {
				sev = check.SeverityMedium
			}
			c.add(check.Finding{Object: check.ObjectRef{Kind: "File", Name: f}, Rule: RuleDockerCaller, Severity: sev,
				Message: kind + " calls docker: it fails once Docker is gone", Evidence: clip(t), File: f, Line: i + 1})
		}
	}
	return nil
}

func placeKind(f string) string {
	switch {
	case strings.Contains(f, "cron"):
		return "cron entry"
	case strings.Contains(f, "/systemd/"):
		return "systemd unit"
	case strings.Contains(f, "rc.local"):
		return "boot script"
	case strings.Contains(f, "cloud"):
		return "cloud-init"
	}
	return "script"
}

func clip(s string) string {
	if len(s) > 160 {
		return s[:157] + "..."
	}
	return s
}

func sortStrings(s []string) { sort.Strings(s) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
