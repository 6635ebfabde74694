package winplan

import (
	"errors"
	"fmt"
	"strings"
)

// psQuote returns s as a PowerShell single-quoted string literal. Inside
// single quotes PowerShell expands nothing ($, backtick and double quotes are
// literal); the only special characters are the single quotes themselves,
// which are escaped by doubling. PowerShell counts the typographic quotes
// U+2018, U+2019, U+201A and U+201B as single quotes too
// (CodeGeneration.EscapeSingleQuotedStringContent doubles them as well), so
// they are doubled here.
func psQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		if isPSSingleQuote(r) {
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

func isPSSingleQuote(r rune) bool {
	switch r {
	case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
		return true
	}
	return false
}

// psList renders ss as a PowerShell array of single-quoted strings.
func psList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = psQuote(s)
	}
	return "@(" + strings.Join(q, ", ") + ")"
}

// errHereString is returned when text cannot be put verbatim in a
// single-quoted here-string.
var errHereString = errors.New("text cannot be embedded in a PowerShell here-string")

// hereString returns the lines of a single-quoted here-string holding text
// verbatim: @' on its own line, the text, '@ on its own line. Nothing inside
// is expanded. The string ends at the first line that starts with a single
// quote (any of PowerShell's four) followed by @, after optional blanks
// (PowerShell 7 allows them), so text with such a line, or a carriage return
// (which PowerShell would read as a line end), is refused. The trailing
// newline of text is not part of the value: PowerShell drops the newline
// before '@.
func hereString(text string) ([]string, error) {
	text = strings.TrimSuffix(text, "\n")
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.ContainsRune(l, '\r') {
			return nil, fmt.Errorf("%w: line %d has a carriage return", errHereString, i+1)
		}
		t := []rune(strings.TrimLeft(l, " \t"))
		if len(t) >= 2 && isPSSingleQuote(t[0]) && t[1] == '@' {
			return nil, fmt.Errorf("%w: line %d would end it", errHereString, i+1)
		}
	}
	out := make([]string, 0, len(lines)+2)
	out = append(out, "@'")
	out = append(out, lines...)
	return append(out, "'@"), nil
}
