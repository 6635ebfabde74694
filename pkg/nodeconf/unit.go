package nodeconf

import (
	"fmt"
	"path"
	"strings"
)

// Unit is what matters of a systemd service unit and its drop-ins: the
// command line it starts, its environment and its environment files.
type Unit struct {
	// ExecStart is the last effective ExecStart= command line, split into words.
	ExecStart []string
	// ExecStartFile is the file that set ExecStart.
	ExecStartFile string
	// Environment holds Environment= assignments, later files winning.
	Environment map[string]string
	// EnvironmentFiles lists EnvironmentFile= paths ("-" prefix removed).
	EnvironmentFiles []string
	// EnvironmentSource tells which file set each Environment= variable.
	EnvironmentSource map[string]string
}

// UnitFile is one unit file or drop-in and its content.
type UnitFile struct {
	Path string
	Data []byte
}

// ParseUnit merges a unit file and its drop-ins (in the order given: the unit
// first, then drop-ins sorted by name, as systemd applies them). An empty
// ExecStart= resets the command, as in systemd.
func ParseUnit(files []UnitFile) (*Unit, error) {
	u := &Unit{Environment: map[string]string{}, EnvironmentSource: map[string]string{}}
	for _, f := range files {
		section := ""
		lines := strings.Split(string(f.Data), "\n")
		for i := 0; i < len(lines); i++ {
			lineNo := i + 1
			line := strings.TrimSpace(lines[i])
			for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
				i++
				line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
			}
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			if line[0] == '[' {
				section = strings.Trim(line, "[] ")
				continue
			}
			if section != "Service" {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch k {
			case "ExecStart":
				if v == "" {
					u.ExecStart, u.ExecStartFile = nil, f.Path
					continue
				}
				v = strings.TrimLeft(v, "@-:+!")
				words, err := splitWords(v)
				if err != nil {
					return nil, &InputError{File: f.Path, Key: "ExecStart", Err: fmt.Errorf("line %d: %v", lineNo, err)}
				}
				u.ExecStart, u.ExecStartFile = words, f.Path
			case "Environment":
				words, err := splitWords(v)
				if err != nil {
					return nil, &InputError{File: f.Path, Key: "Environment", Err: fmt.Errorf("line %d: %v", lineNo, err)}
				}
				for _, w := range words {
					name, val, ok := strings.Cut(w, "=")
					if ok && validEnvName(name) {
						u.Environment[name] = val
						u.EnvironmentSource[name] = f.Path
					}
				}
			case "EnvironmentFile":
				if v == "" {
					u.EnvironmentFiles = nil
					continue
				}
				u.EnvironmentFiles = append(u.EnvironmentFiles, strings.TrimPrefix(v, "-"))
			}
		}
	}
	return u, nil
}

// ExpandArgs returns the unit's arguments after the program, with $VAR (split
// into words) and ${VAR} (one word) taken from env. Unset variables vanish.
func (u *Unit) ExpandArgs(env map[string]string) ([]string, error) {
	args, err := u.ExpandArgsFrom(env, nil)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a.Value
	}
	return out, nil
}

// ExpandArgsFrom is ExpandArgs that keeps, for each word, the file that set
// it: envSource names the file of each variable (a drop-in's Environment=
// or an EnvironmentFile); literal words come from the ExecStart= file.
func (u *Unit) ExpandArgsFrom(env, envSource map[string]string) ([]Arg, error) {
	if len(u.ExecStart) == 0 {
		return nil, nil
	}
	from := func(name string) string {
		if f := envSource[name]; f != "" {
			return f
		}
		return u.ExecStartFile
	}
	var out []Arg
	for _, w := range u.ExecStart[1:] {
		switch {
		case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
			name := w[2 : len(w)-1]
			if v := env[name]; v != "" {
				out = append(out, Arg{Value: v, File: from(name)})
			}
		case strings.HasPrefix(w, "$") && validEnvName(w[1:]):
			words, err := splitWords(env[w[1:]])
			if err != nil {
				return nil, &InputError{File: from(w[1:]), Key: w[1:], Err: err}
			}
			for _, x := range words {
				out = append(out, Arg{Value: x, File: from(w[1:])})
			}
		default:
			out = append(out, Arg{Value: w, File: u.ExecStartFile})
		}
	}
	// `docker daemon ...` (before Docker 1.12) and `dockerd ...` both start the daemon.
	if path.Base(u.ExecStart[0]) == "docker" && len(out) > 0 && out[0].Value == "daemon" {
		out = out[1:]
	}
	return out, nil
}
