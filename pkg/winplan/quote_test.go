package winplan

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// unquotePS reads a PowerShell single-quoted string literal the way the
// tokenizer does (any of the four single-quote characters opens, closes, and
// escapes by doubling). It returns the rest of the input after the literal.
func unquotePS(t *testing.T, s string) (val, rest string) {
	t.Helper()
	r := []rune(s)
	if len(r) == 0 || !isPSSingleQuote(r[0]) {
		t.Fatalf("%q does not start with a single quote", s)
	}
	var b strings.Builder
	for i := 1; i < len(r); i++ {
		if isPSSingleQuote(r[i]) {
			if i+1 < len(r) && isPSSingleQuote(r[i+1]) {
				b.WriteRune(r[i+1])
				i++
				continue
			}
			return b.String(), string(r[i+1:])
		}
		b.WriteRune(r[i])
	}
	t.Fatalf("%q: unterminated", s)
	return "", ""
}

func TestPSQuote(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "''"},
		{"plain", "win-node-1", "'win-node-1'"},
		{"apostrophe", "it's", "'it''s'"},
		{"only quotes", "''", "''''''"},
		{"injection", "x'; Stop-Computer -Force; '", "'x''; Stop-Computer -Force; '''"},
		{"subexpression stays literal", "$(Remove-Item C:\\ -Recurse)", "'$(Remove-Item C:\\ -Recurse)'"},
		{"variables and backticks", "$env:PATH `n \"dq\"", "'$env:PATH `n \"dq\"'"},
		{"left single quotation mark", "a\u2018b", "'a\u2018\u2018b'"},
		{"right single quotation mark", "a\u2019; calc; \u2019", "'a\u2019\u2019; calc; \u2019\u2019'"},
		{"low-9 and reversed-9 quotes", "\u201a\u201b", "'\u201a\u201a\u201b\u201b'"},
		{"double quotation marks are not special", "\u201c\u201d", "'\u201c\u201d'"},
		{"here-string end", "'@", "'''@'"},
		{"newline stays inside", "a\n'@\nb", "'a\n''@\nb'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := psQuote(tt.in)
			if got != tt.want {
				t.Errorf("psQuote(%q) = %q, want %q", tt.in, got, tt.want)
			}
			val, rest := unquotePS(t, got)
			if val != tt.in || rest != "" {
				t.Errorf("reads back as %q with %q left over", val, rest)
			}
		})
	}
}

// FuzzPSQuote: whatever the input, the literal reads back as exactly the
// input and nothing follows it.
func FuzzPSQuote(f *testing.F) {
	for _, s := range []string{"", "'", "a'b", "\u2019", "'@\n", "$(x)", "`"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // psQuote's input is checked text; invalid UTF-8 cannot round-trip
		}
		val, rest := unquotePS(t, psQuote(s))
		if val != s || rest != "" {
			t.Errorf("psQuote(%q) reads back as %q, %q left over", s, val, rest)
		}
	})
}

func TestHereString(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		wantErr  bool
	}{
		{name: "toml", in: "version = 2\n[plugins]\n  a = 'x'\n", want: []string{"@'", "version = 2", "[plugins]", "  a = 'x'", "'@"}},
		{name: "quote not at line start", in: "a = '@'\n", want: []string{"@'", "a = '@'", "'@"}},
		{name: "at sign then quote", in: "@'\n", want: []string{"@'", "@'", "'@"}},
		{name: "terminator", in: "a\n'@\n", wantErr: true},
		{name: "indented terminator", in: "a\n  \t'@ x\n", wantErr: true},
		{name: "typographic terminator", in: "\u2019@\n", wantErr: true},
		{name: "carriage return", in: "a\r\nb\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hereString(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errHereString) {
					t.Fatalf("err = %v, want errHereString; got %q", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
