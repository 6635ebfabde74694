package nodeconf

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// flagKeys maps each dockerd flag name to its daemon.json key.
var flagKeys = func() map[string]string {
	m := map[string]string{}
	for key, spec := range daemonKeys {
		for _, f := range spec.flags {
			m[f] = key
		}
	}
	return m
}()

// proxyFlags are the dockerd flags (Docker 23+) that set "proxies".
var proxyFlags = map[string]bool{"http-proxy": true, "https-proxy": true, "no-proxy": true}

// DockerdFlags is the result of parsing a dockerd command line.
type DockerdFlags struct {
	Config *DaemonConfig
	// ConfigFile is the --config-file value ("" when not given).
	ConfigFile string
}

// Arg is one word of a command line and the file that wrote it: the unit
// or drop-in for a literal word, the drop-in or EnvironmentFile that set the
// variable for a word that came from $VAR.
type Arg struct {
	Value string
	File  string
}

// ParseDockerdFlags parses dockerd's arguments (after the program name) as
// set in file (a unit, a drop-in or an env file, used in errors).
func ParseDockerdFlags(file string, args []string) (*DockerdFlags, error) {
	as := make([]Arg, len(args))
	for i, a := range args {
		as[i] = Arg{Value: a, File: file}
	}
	return ParseDockerdArgs(as)
}

// ParseDockerdArgs parses dockerd's arguments, each with the file that set
// it: a setting's Source is the file its flag came from.
func ParseDockerdArgs(argv []Arg) (*DockerdFlags, error) {
	out := &DockerdFlags{Config: &DaemonConfig{Settings: map[string]*Setting{}}}
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = a.Value
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		file := argv[i].File
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return nil, &InputError{File: file, Err: fmt.Errorf("dockerd takes no arguments, got %q", a)}
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "config-file" {
			if !hasVal {
				if i+1 >= len(args) {
					return nil, &InputError{File: file, Key: "--config-file", Err: errors.New("needs a value")}
				}
				i++
				val = args[i]
			}
			out.ConfigFile = val
			continue
		}
		key, ok := flagKeys[name]
		if proxyFlags[name] {
			key, ok = "proxies", true
		}
		if !ok {
			return nil, &InputError{File: file, Key: "--" + name, Err: errors.New("unknown dockerd flag")}
		}
		spec := daemonKeys[key]
		if spec.kind == kBool {
			b := true
			if hasVal {
				var err error
				if b, err = strconv.ParseBool(val); err != nil {
					return nil, &InputError{File: file, Key: "--" + name, Err: fmt.Errorf("want a boolean, got %q", val)}
				}
			}
			out.Config.Settings[key] = &Setting{Key: key, Value: b, Source: file}
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, &InputError{File: file, Key: "--" + name, Err: errors.New("needs a value")}
			}
			i++
			val = args[i]
		}
		if err := setFlag(out.Config, file, key, name, val); err != nil {
			return nil, &InputError{File: file, Key: "--" + name, Err: err}
		}
	}
	return out, nil
}

func setFlag(cfg *DaemonConfig, file, key, name, val string) error {
	s := cfg.Settings[key]
	if s == nil {
		s = &Setting{Key: key, Source: file}
		cfg.Settings[key] = s
	}
	switch daemonKeys[key].kind {
	case kString:
		s.Value = val
	case kInt:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", val)
		}
		s.Value = n
	case kStrings, kAny:
		l, _ := s.Value.([]string)
		s.Value = append(l, val)
	case kStringMap:
		m, _ := s.Value.(map[string]string)
		if m == nil {
			m = map[string]string{}
		}
		k, v, ok := strings.Cut(val, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", val)
		}
		m[k] = v
		s.Value = m
	case kRuntimes:
		m, _ := s.Value.(map[string]Runtime)
		if m == nil {
			m = map[string]Runtime{}
		}
		k, v, ok := strings.Cut(val, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("want NAME=PATH, got %q", val)
		}
		m[k] = Runtime{Path: v}
		s.Value = m
	case kFeatures:
		m, _ := s.Value.(map[string]bool)
		if m == nil {
			m = map[string]bool{}
		}
		k, v, ok := strings.Cut(val, "=")
		b := true
		if ok {
			var err error
			if b, err = strconv.ParseBool(v); err != nil {
				return fmt.Errorf("want NAME[=BOOL], got %q", val)
			}
		}
		m[k] = b
		s.Value = m
	case kUlimits:
		m, _ := s.Value.(map[string]Ulimit)
		if m == nil {
			m = map[string]Ulimit{}
		}
		u, err := parseUlimit(val)
		if err != nil {
			return err
		}
		m[u.Name] = u
		s.Value = m
	case kProxies:
		p, _ := s.Value.(Proxies)
		switch name {
		case "http-proxy":
			p.HTTPProxy = val
		case "https-proxy":
			p.HTTPSProxy = val
		case "no-proxy":
			p.NoProxy = val
		}
		s.Value = p
	default:
		return fmt.Errorf("cannot be set as a flag")
	}
	return nil
}

// parseUlimit parses NAME=SOFT[:HARD] as dockerd's --default-ulimit does.
func parseUlimit(val string) (Ulimit, error) {
	name, lim, ok := strings.Cut(val, "=")
	if !ok || name == "" {
		return Ulimit{}, fmt.Errorf("want NAME=SOFT[:HARD], got %q", val)
	}
	softS, hardS, hasHard := strings.Cut(lim, ":")
	soft, err := strconv.ParseInt(softS, 10, 64)
	if err != nil {
		return Ulimit{}, fmt.Errorf("want NAME=SOFT[:HARD], got %q", val)
	}
	hard := soft
	if hasHard {
		if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil {
			return Ulimit{}, fmt.Errorf("want NAME=SOFT[:HARD], got %q", val)
		}
	}
	return Ulimit{Name: name, Soft: soft, Hard: hard}, nil
}

// MergeDaemon merges dockerd flags into the daemon.json configuration. Like
// dockerd, it refuses a setting made both ways, except "runtimes": dockerd
// skips that key in its conflict check (moby daemon/config skipDuplicates)
// and merges --add-runtime with daemon.json's runtimes (mergo.Merge of the
// flag configuration into the file's; the file's entry wins on a name set
// both ways).
func MergeDaemon(file *DaemonConfig, flags ...*DaemonConfig) (*DaemonConfig, error) {
	out := &DaemonConfig{Settings: map[string]*Setting{}}
	if file != nil {
		for k, s := range file.Settings {
			out.Settings[k] = s
		}
	}
	var conflicts []string
	var where string
	for _, f := range flags {
		if f == nil {
			continue
		}
		for _, k := range f.Keys() {
			s := f.Settings[k]
			if prev, ok := out.Settings[k]; ok && file != nil && file.Settings[k] == prev {
				if k == "runtimes" {
					out.Settings[k] = mergeRuntimes(prev, s)
					continue
				}
				conflicts = append(conflicts, k)
				where = prev.Source
				continue
			}
			out.Settings[k] = s
		}
	}
	if file != nil {
		out.Duplicates = append(out.Duplicates, file.Duplicates...)
	}
	if len(conflicts) > 0 {
		sort.Strings(conflicts)
		return nil, &InputError{File: where, Key: strings.Join(conflicts, ", "),
			Err: errors.New("set both as a dockerd flag and in the configuration file (dockerd refuses to start)")}
	}
	return out, nil
}

// mergeRuntimes merges --add-runtime entries (flag) into daemon.json's
// runtimes (file); the file's entry wins on a name given both ways. The
// merged setting names both sources.
func mergeRuntimes(file, flag *Setting) *Setting {
	merged := map[string]Runtime{}
	fm, _ := flag.Value.(map[string]Runtime)
	for k, v := range fm {
		merged[k] = v
	}
	dm, _ := file.Value.(map[string]Runtime)
	for k, v := range dm {
		merged[k] = v
	}
	return &Setting{Key: file.Key, Value: merged, Source: file.Source + ", " + flag.Source}
}
