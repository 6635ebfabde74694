package nodeconf

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// table is an ordered TOML table: keys and sub-tables keep insertion order,
// so generated files are stable and read like containerd's own examples.
type table struct {
	keys   []string
	values map[string]any
	subs   []string
	tables map[string]*table
}

func newTable() *table { return &table{values: map[string]any{}, tables: map[string]*table{}} }

// set sets key (a dotted path of table names, then the key) to v.
func (t *table) set(v any, path ...string) {
	tt := t.sub(path[:len(path)-1]...)
	k := path[len(path)-1]
	if _, ok := tt.values[k]; !ok {
		tt.keys = append(tt.keys, k)
	}
	tt.values[k] = v
}

// sub returns (creating) the table at path.
func (t *table) sub(path ...string) *table {
	cur := t
	for _, p := range path {
		n, ok := cur.tables[p]
		if !ok {
			n = newTable()
			cur.tables[p] = n
			cur.subs = append(cur.subs, p)
		}
		cur = n
	}
	return cur
}

func (t *table) render() []byte {
	var b bytes.Buffer
	t.write(&b, nil, 0)
	return bytes.TrimLeft(b.Bytes(), "\n")
}

// write renders t at path; depth counts the ancestors that had a header,
// which sets the indentation.
func (t *table) write(b *bytes.Buffer, path []string, depth int) {
	indent := strings.Repeat("  ", depth)
	keyIndent := ""
	if len(path) > 0 {
		keyIndent = indent + "  "
	}
	next := depth
	if len(path) > 0 && len(t.keys) > 0 {
		if depth == 0 {
			b.WriteString("\n")
		}
		q := make([]string, len(path))
		for i, p := range path {
			q[i] = tomlKey(p)
		}
		fmt.Fprintf(b, "%s[%s]\n", indent, strings.Join(q, "."))
		next = depth + 1
	}
	for _, k := range t.keys {
		fmt.Fprintf(b, "%s%s = %s\n", keyIndent, tomlKey(k), tomlValue(t.values[k]))
	}
	for _, s := range t.subs {
		t.tables[s].write(b, append(append([]string(nil), path...), s), next)
	}
}

func tomlKey(k string) string {
	if k == "" {
		return `""`
	}
	for _, c := range k {
		if !(c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return tomlString(k)
		}
	}
	return k
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			r = utf8.RuneError
		}
		i += size
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return tomlString(x)
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if x == float64(int64(x)) && x < 1e15 && x > -1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = tomlString(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case [][]string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = tomlValue(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	panic(fmt.Sprintf("nodeconf: no TOML form for %T", v))
}

// tomlScalar tells whether a JSON-decoded value can be written as a TOML
// value, and converts it (lists of strings included).
func tomlScalar(v any) (any, bool) {
	switch x := v.(type) {
	case string, bool, float64:
		return x, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
