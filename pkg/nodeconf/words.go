package nodeconf

import (
	"errors"
	"fmt"
	"strings"
)

// splitWords splits s into words the way a POSIX shell (and systemd) does
// for a simple command line: blanks separate words; single quotes, double
// quotes and backslashes quote. No expansion is done.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// EnvVar is one variable of an environment file, with its line.
type EnvVar struct {
	Name, Value string
	Line        int
}

// ParseEnvFile parses a shell-style environment file (/etc/default/docker,
// kubeadm-flags.env): NAME=VALUE lines, with optional `export`, quotes and
// comments. file names it in errors. A line that is not an assignment is an
// error; ReadEnvFile reads such a file the way systemd does instead.
func ParseEnvFile(file string, data []byte) ([]EnvVar, error) {
	vars, _, err := parseEnv(file, data, false)
	return vars, err
}

// SkippedLine is a line of an environment file that is not an assignment.
type SkippedLine struct {
	File string
	Line int
	Text string
}

// ReadEnvFile reads an EnvironmentFile= of a unit as systemd does: a line
// that is not a NAME=VALUE assignment (the `if [ -z "${DOCKER_CERT_PATH}" ];
// then ... fi` block of RHEL/CentOS 7's stock /etc/sysconfig/docker) is
// skipped, not fatal (systemd src/basic/env-file.c drops a line without "="
// and an assignment whose name is invalid, and goes on). The skipped lines
// are returned so they can be reported.
func ReadEnvFile(file string, data []byte) ([]EnvVar, []SkippedLine, error) {
	return parseEnv(file, data, true)
}

func parseEnv(file string, data []byte, lenient bool) ([]EnvVar, []SkippedLine, error) {
	var vars []EnvVar
	var skipped []SkippedLine
	lines := strings.Split(string(data), "\n")
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
		line = strings.TrimPrefix(line, "export ")
		eq := strings.IndexByte(line, '=')
		if eq <= 0 || !validEnvName(line[:eq]) {
			if lenient {
				skipped = append(skipped, SkippedLine{File: file, Line: lineNo, Text: clip(line)})
				continue
			}
			return nil, nil, &InputError{File: file, Err: fmt.Errorf("line %d: want NAME=VALUE, got %q", lineNo, clip(line))}
		}
		words, err := splitWords(line[eq+1:])
		if err != nil {
			return nil, nil, &InputError{File: file, Key: line[:eq], Err: fmt.Errorf("line %d: %v", lineNo, err)}
		}
		vars = append(vars, EnvVar{Name: line[:eq], Value: strings.Join(words, " "), Line: lineNo})
	}
	return vars, skipped, nil
}

func validEnvName(s string) bool {
	for i, c := range s {
		if c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return s != ""
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
