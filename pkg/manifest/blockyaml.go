package manifest

import (
	"bytes"
	"strings"
	"sync"
	"unsafe"

	"gopkg.in/yaml.v3"
)

// The block-YAML fast path.
//
// Nearly every manifest is written in the plain subset of YAML that Helm,
// kubectl and people produce: block mappings and sequences indented with
// spaces, one-line plain, quoted and flow scalars, literal block scalars.
// blockParser builds the same yaml.Node tree gopkg.in/yaml.v3 would for that
// subset, several times faster, because it skips yaml.v3's general scanner,
// event parser and comment bookkeeping. It accepts only what it is sure of:
// any document with a construct outside the subset (anchors, aliases, tags,
// merge keys, folded or indented block scalars, multi-line plain, quoted or
// flow scalars, tabs, duplicate keys, anything malformed) is handed to
// yaml.v3 whole, which decodes it or reports the error with its line. So
// what the check accepts and how it reports bad input do not change;
// TestBlockParserMatchesYAMLv3 holds the two to the same trees.

// errFallback is returned by the fast path for a document it leaves to yaml.v3.
type errFallback struct{}

func (errFallback) Error() string { return "outside the block-YAML subset" }

var fallback error = errFallback{}

// docChunk is one document of a stream: its text and the line it starts on.
type docChunk struct {
	text  []byte
	first int // 1-based line of text's first line
}

// splitDocuments splits a YAML stream at its `---` lines. ok is false when
// the stream has directives or markers the fast path does not split on.
func splitDocuments(data []byte) (docs []docChunk, ok bool) {
	start, startLine, line := 0, 1, 1
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if end >= 0 {
			next = i + end + 1
			end = i + end
		} else {
			end = len(data)
		}
		l := bytes.TrimRight(data[i:end], "\r")
		if len(l) > 0 && (l[0] == '%' || bytes.HasPrefix(l, []byte("..."))) {
			return nil, false
		}
		if bytes.HasPrefix(l, []byte("---")) && (len(l) == 3 || l[3] == ' ') {
			if rest := bytes.TrimSpace(l[3:]); len(rest) > 0 && rest[0] != '#' {
				return nil, false // content on the marker line
			}
			docs = append(docs, docChunk{data[start:i], startLine})
			start, startLine = next, line+1
		}
		i = next
		line++
	}
	docs = append(docs, docChunk{data[start:], startLine})
	return docs, true
}

// bline is one significant line of a document.
type bline struct {
	num    int    // 1-based line number in the file
	indent int    // leading spaces
	text   []byte // after the indentation, trailing spaces kept
	blank  bool   // empty or only a comment
}

type blockParser struct {
	lines []bline
	pos   int
	// slabs hold the document's nodes; they go back to slabPool once the
	// check is done with the document (see docRef).
	slabs []*nodeSlab
	// openEnd is true when the document's last line has no line break.
	openEnd bool
	// stack holds the entries of the collections being parsed; a finished
	// collection's entries move to one slice of chunk (see content).
	stack []*yaml.Node
}

// parserBuffers are the line and entry buffers of a parser, reused from one
// document to the next: nothing the tree keeps points into them.
type parserBuffers struct {
	lines []bline
	stack []*yaml.Node
}

var bufferPool = sync.Pool{New: func() any { return new(parserBuffers) }}

// content moves the entries above start of the stack into a node's
// Content: a slice of the current slab's entries, so a document's
// collections take no allocation of their own (a long one takes one).
func (p *blockParser) content(start int) []*yaml.Node {
	n := len(p.stack) - start
	if n == 0 {
		return nil
	}
	var c []*yaml.Node
	switch s := p.slab(); {
	case n <= len(s.entries)-s.usedEntries:
		c = s.entries[s.usedEntries : s.usedEntries+n : s.usedEntries+n]
		s.usedEntries += n
	case n > len(s.entries):
		c = make([]*yaml.Node, n)
	default:
		s = p.newSlab()
		c = s.entries[:n:n]
		s.usedEntries = n
	}
	copy(c, p.stack[start:])
	clear(p.stack[start:])
	p.stack = p.stack[:start]
	return c
}

// plainText reports whether t holds only printable ASCII, spaces and line
// breaks (\n, \r\n): other characters have rules (tabs, Unicode line
// breaks, non-printables, invalid UTF-8) the fast path leaves to yaml.v3.
func plainText(t []byte) bool {
	for i, c := range t {
		if c >= 0x7f || c < 0x20 && c != '\n' && !(c == '\r' && i+1 < len(t) && t[i+1] == '\n') {
			return false
		}
	}
	return true
}

// nodeSlab is a block of nodes handed out one by one: a document's tree
// takes a few slabs instead of a few hundred allocations, and the slabs are
// reused for later documents.
type nodeSlab struct {
	nodes       [64]yaml.Node
	used        int
	entries     [192]*yaml.Node // the Content of collections
	usedEntries int
}

var slabPool = sync.Pool{New: func() any { return new(nodeSlab) }}

func releaseSlabs(slabs []*nodeSlab) {
	for _, s := range slabs {
		s.used, s.usedEntries = 0, 0
		slabPool.Put(s)
	}
}

// parseBlockDocument parses one document; nil with a nil error is an empty
// document. The nodes live in slabs, which the caller hands back with
// releaseSlabs once nothing refers to the tree.
func parseBlockDocument(c docChunk) (*yaml.Node, []*nodeSlab, error) {
	if !plainText(c.text) {
		return nil, nil, fallback
	}
	buf := bufferPool.Get().(*parserBuffers)
	p := &blockParser{lines: buf.lines[:0], stack: buf.stack[:0]}
	n, err := p.document(c)
	clear(p.stack)
	buf.lines, buf.stack = p.lines[:0], p.stack[:0]
	bufferPool.Put(buf)
	if err != nil || n == nil {
		releaseSlabs(p.slabs)
		return nil, nil, err
	}
	return n, p.slabs, nil
}

func (p *blockParser) document(c docChunk) (*yaml.Node, error) {
	p.openEnd = len(c.text) > 0 && c.text[len(c.text)-1] != '\n'
	if nl := bytes.Count(c.text, []byte("\n")); cap(p.lines) < nl+1 {
		p.lines = make([]bline, 0, nl+1)
	}
	num := c.first
	for rest := c.text; ; {
		var raw []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			raw, rest = rest[:i], rest[i+1:]
		} else {
			raw, rest = rest, nil
		}
		raw = bytes.TrimRight(raw, "\r")
		ind := 0
		for ind < len(raw) && raw[ind] == ' ' {
			ind++
		}
		text := raw[ind:]
		p.lines = append(p.lines, bline{num: num, indent: ind, text: text, blank: len(text) == 0 || text[0] == '#'})
		num++
		if rest == nil {
			break
		}
	}
	p.skipBlank()
	if p.pos == len(p.lines) {
		return nil, nil
	}
	first := p.lines[p.pos]
	if first.indent != 0 {
		return nil, fallback
	}
	n, err := p.node(0, -1)
	if err != nil {
		return nil, err
	}
	p.skipBlank()
	if p.pos != len(p.lines) {
		return nil, fallback
	}
	return n, nil
}

// slab returns the slab nodes and entries are taken from.
func (p *blockParser) slab() *nodeSlab {
	if len(p.slabs) == 0 {
		return p.newSlab()
	}
	return p.slabs[len(p.slabs)-1]
}

func (p *blockParser) newSlab() *nodeSlab {
	s := slabPool.Get().(*nodeSlab)
	p.slabs = append(p.slabs, s)
	return s
}

func (p *blockParser) newNode(kind yaml.Kind, line int) *yaml.Node {
	s := p.slab()
	if s.used == len(s.nodes) {
		s = p.newSlab()
	}
	n := &s.nodes[s.used]
	s.used++
	// Only the fields the fast path sets are reset: the others (anchor,
	// alias, comments, column) stay zero in every slab, and each pointer
	// written costs a write barrier while the collector runs.
	n.Kind, n.Style, n.Line = kind, 0, line
	n.Value, n.Content = "", nil
	switch kind {
	case yaml.MappingNode:
		n.Tag = "!!map"
	case yaml.SequenceNode:
		n.Tag = "!!seq"
	default:
		n.Tag = ""
	}
	return n
}

func (p *blockParser) skipBlank() {
	for p.pos < len(p.lines) && p.lines[p.pos].blank {
		p.pos++
	}
}

// node parses the block node that starts at the current line, whose
// indentation is more than parent.
func (p *blockParser) node(indent, parent int) (*yaml.Node, error) {
	p.skipBlank()
	if p.pos == len(p.lines) {
		return nil, fallback
	}
	l := p.lines[p.pos]
	if l.indent != indent || l.indent <= parent {
		return nil, fallback
	}
	if isSeqEntry(l.text) {
		return p.sequence(indent, l.text, l.num)
	}
	return p.mapping(indent, l.text, l.num)
}

func isSeqEntry(t []byte) bool {
	return len(t) > 0 && t[0] == '-' && (len(t) == 1 || t[1] == ' ')
}

// sequence parses the block sequence whose entries sit at column indent;
// text is the first entry's line (it may start mid-line, after a parent's "- ").
func (p *blockParser) sequence(indent int, text []byte, num int) (*yaml.Node, error) {
	seq := p.newNode(yaml.SequenceNode, num)
	start := len(p.stack)
	defer func() { seq.Content = p.content(start) }()
	for {
		rest := text[1:]
		sp := 0
		for sp < len(rest) && rest[sp] == ' ' {
			sp++
		}
		rest = rest[sp:]
		var item *yaml.Node
		var err error
		switch {
		case len(rest) == 0 || rest[0] == '#':
			p.pos++
			p.skipBlank()
			if p.pos < len(p.lines) && p.lines[p.pos].indent > indent {
				item, err = p.node(p.lines[p.pos].indent, indent)
			} else {
				item = p.scalarNode("", num, false)
			}
		default:
			item, err = p.inline(rest, indent+1+sp, indent, num)
		}
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, item)
		p.skipBlank()
		if p.pos == len(p.lines) {
			return seq, nil
		}
		l := p.lines[p.pos]
		if l.indent != indent || !isSeqEntry(l.text) {
			if l.indent > indent {
				return nil, fallback
			}
			return seq, nil
		}
		text, num = l.text, l.num
	}
}

// inline parses a node that starts mid-line at column col, after "- ":
// a mapping whose first key is on this line, a nested sequence, or a scalar.
func (p *blockParser) inline(text []byte, col, parent, num int) (*yaml.Node, error) {
	if isSeqEntry(text) {
		return p.sequence(col, text, num)
	}
	if _, _, ok, err := splitKey(text); err != nil {
		return nil, err
	} else if ok {
		return p.mapping(col, text, num)
	}
	n, err := p.flowOrScalar(text, num)
	if err != nil {
		return nil, err
	}
	p.pos++
	if p.nextMoreIndented(parent) {
		return nil, fallback // a multi-line scalar
	}
	return n, nil
}

func (p *blockParser) nextMoreIndented(indent int) bool {
	p.skipBlank()
	return p.pos < len(p.lines) && p.lines[p.pos].indent > indent
}

// mapping parses the block mapping whose keys sit at column indent; text is
// the first key's line (it may start mid-line, after a parent's "- ").
func (p *blockParser) mapping(indent int, text []byte, num int) (*yaml.Node, error) {
	m := p.newNode(yaml.MappingNode, num)
	start := len(p.stack)
	defer func() { m.Content = p.content(start) }()
	for {
		key, rest, ok, err := splitKey(text)
		if err != nil {
			return nil, err
		}
		if !ok || key.Value == "<<" && key.Style == 0 || hasKey(p.stack[start:], key.Value) {
			return nil, fallback
		}
		k := p.newNode(yaml.ScalarNode, num)
		k.Value, k.Style, k.Tag = key.Value, key.Style, key.Tag
		var v *yaml.Node
		switch {
		case len(rest) == 0 || rest[0] == '#':
			p.pos++
			p.skipBlank()
			switch {
			case p.pos < len(p.lines) && p.lines[p.pos].indent > indent:
				v, err = p.node(p.lines[p.pos].indent, indent)
			case p.pos < len(p.lines) && p.lines[p.pos].indent == indent && isSeqEntry(p.lines[p.pos].text):
				// An indentless sequence: "key:\n- a".
				v, err = p.sequence(indent, p.lines[p.pos].text, p.lines[p.pos].num)
			default:
				v = p.scalarNode("", num, false)
			}
		case rest[0] == '|':
			v, err = p.literal(rest, indent, num)
		default:
			if v, err = p.flowOrScalar(rest, num); err == nil {
				p.pos++
				if p.nextMoreIndented(indent) {
					err = fallback // a multi-line scalar
				}
			}
		}
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, k, v)
		p.skipBlank()
		if p.pos == len(p.lines) {
			return m, nil
		}
		l := p.lines[p.pos]
		if l.indent > indent {
			return nil, fallback
		}
		if l.indent < indent || isSeqEntry(l.text) {
			return m, nil // the enclosing node's to take, or an error it finds
		}
		text, num = l.text, l.num
	}
}

// hasKey reports whether a mapping's entries already have key: a duplicate key is left to yaml.v3.
func hasKey(entries []*yaml.Node, key string) bool {
	for i := 0; i < len(entries); i += 2 {
		if entries[i].Value == key {
			return true
		}
	}
	return false
}

// splitKey splits "key: rest" (or "key:"). ok is false when text is not a
// mapping entry; an error when it is one the fast path does not take.
func splitKey(text []byte) (key yaml.Node, rest []byte, ok bool, err error) {
	if len(text) == 0 {
		return key, nil, false, nil
	}
	var after []byte
	switch text[0] {
	case '"', '\'':
		v, n, err := quoted(text)
		if err != nil {
			return key, nil, false, err
		}
		after = text[n:]
		key = yaml.Node{Value: v, Tag: "!!str", Style: quoteStyle(text[0])}
		if len(after) == 0 || after[0] != ':' {
			return key, nil, false, nil
		}
	default:
		if isIndicator(text[0]) {
			return key, nil, false, nil
		}
		i := colonSpace(text)
		if i < 0 {
			return key, nil, false, nil
		}
		raw := text[:i]
		if bytes.Contains(raw, []byte(" #")) {
			return key, nil, false, fallback
		}
		v := view(bytes.TrimRight(raw, " "))
		key = yaml.Node{Value: v, Tag: plainTag(v)}
		after = text[i:]
	}
	after = after[1:] // the colon
	if len(after) > 0 && after[0] != ' ' {
		return key, nil, false, fallback
	}
	return key, bytes.TrimLeft(after, " "), true, nil
}

// colonSpace returns the index of the first ": " or of a final ":", or -1.
func colonSpace(t []byte) int {
	for i := 0; i < len(t); i++ {
		if t[i] == ':' && (i+1 == len(t) || t[i+1] == ' ') {
			return i
		}
	}
	return -1
}

func quoteStyle(q byte) yaml.Style {
	if q == '"' {
		return yaml.DoubleQuotedStyle
	}
	return yaml.SingleQuotedStyle
}

// isIndicator reports whether a plain scalar may not start with c.
func isIndicator(c byte) bool {
	switch c {
	case '[', ']', '{', '}', ',', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '?', '-', ':':
		return true
	}
	return false
}

func (p *blockParser) scalarNode(v string, line int, quotedStyle bool) *yaml.Node {
	n := p.newNode(yaml.ScalarNode, line)
	n.Value = v
	if quotedStyle {
		n.Tag = "!!str"
	} else {
		n.Tag = plainTag(v)
	}
	return n
}

// flowOrScalar parses a one-line value: flow collection, quoted or plain scalar.
func (p *blockParser) flowOrScalar(text []byte, num int) (*yaml.Node, error) {
	switch text[0] {
	case '[', '{':
		f := flowParser{p: p, t: text, line: num}
		n, err := f.value()
		if err != nil {
			return nil, err
		}
		if !endOfLine(text[f.i:]) {
			return nil, fallback
		}
		return n, nil
	case '"', '\'':
		v, i, err := quoted(text)
		if err != nil || !endOfLine(text[i:]) {
			return nil, fallback
		}
		n := p.scalarNode(v, num, true)
		n.Style = quoteStyle(text[0])
		return n, nil
	}
	v, err := plainValue(text)
	if err != nil {
		return nil, err
	}
	return p.scalarNode(v, num, false), nil
}

// endOfLine reports whether t holds only spaces and maybe a comment.
func endOfLine(t []byte) bool {
	t = bytes.TrimLeft(t, " ")
	return len(t) == 0 || t[0] == '#'
}

// plainValue returns a plain scalar value ending the line, comment removed.
func plainValue(text []byte) (string, error) {
	c := text[0]
	if isIndicator(c) && !(c == '-' || c == '?' || c == ':') || (c == '-' || c == '?' || c == ':') && (len(text) == 1 || text[1] == ' ') {
		return "", fallback
	}
	if i := bytes.Index(text, []byte(" #")); i >= 0 {
		text = text[:i]
	}
	text = bytes.TrimRight(text, " ")
	if colonSpace(text) >= 0 {
		return "", fallback // "a: b" where a scalar belongs
	}
	return view(text), nil
}

// literal parses a literal block scalar ("|", "|-", "|+") under a key at indent.
func (p *blockParser) literal(header []byte, indent, num int) (*yaml.Node, error) {
	chomp := byte(0)
	h := header[1:]
	if len(h) > 0 && (h[0] == '-' || h[0] == '+') {
		chomp, h = h[0], h[1:]
	}
	if !endOfLine(h) || len(h) > 0 && h[0] != ' ' && h[0] != '#' {
		return nil, fallback // indentation indicators, folded style
	}
	p.pos++
	// Content is every following line more indented than the key, blank
	// lines (only spaces) included; a blank line with more spaces than the
	// content's indentation carries them, which the fast path leaves to yaml.v3.
	content, last, i := -1, -1, p.pos
	for ; i < len(p.lines); i++ {
		l := p.lines[i]
		if len(l.text) == 0 {
			continue
		}
		if l.indent <= indent {
			break
		}
		if content < 0 {
			content = l.indent
		}
		if l.indent < content {
			return nil, fallback
		}
		last = i
	}
	if p.openEnd && last == len(p.lines)-1 {
		return nil, fallback // no line break to keep or clip
	}
	var b strings.Builder
	for j := p.pos; j < i; j++ {
		l := p.lines[j]
		if len(l.text) == 0 {
			if l.indent > indent && (content < 0 || l.indent > content) {
				return nil, fallback
			}
			if j < last {
				b.WriteByte('\n')
			}
			continue
		}
		b.WriteString(strings.Repeat(" ", l.indent-content))
		b.Write(l.text)
		b.WriteByte('\n')
	}
	v := b.String()
	switch chomp {
	case '-':
		v = strings.TrimRight(v, "\n")
	case '+':
		return nil, fallback
	}
	p.pos = i
	n := p.scalarNode(v, num, true)
	n.Style = yaml.LiteralStyle
	return n, nil
}

// quoted decodes a single- or double-quoted scalar at the start of t and
// returns it with the index just past its closing quote.
func quoted(t []byte) (string, int, error) {
	q := t[0]
	// Most quoted scalars have no escape: their value is a view of the text.
	for i := 1; i < len(t); i++ {
		if t[i] == '\\' || t[i] == q && q == '\'' && i+1 < len(t) && t[i+1] == '\'' {
			break
		}
		if t[i] == q {
			return view(t[1:i]), i + 1, nil
		}
	}
	var b []byte
	for i := 1; i < len(t); i++ {
		c := t[i]
		switch {
		case q == '\'' && c == '\'':
			if i+1 < len(t) && t[i+1] == '\'' {
				b = append(b, '\'')
				i++
				continue
			}
			return string(b), i + 1, nil
		case q == '"' && c == '"':
			return string(b), i + 1, nil
		case q == '"' && c == '\\':
			if i+1 == len(t) {
				return "", 0, fallback
			}
			i++
			switch t[i] {
			case '"', '\\', '/':
				b = append(b, t[i])
			case 'n':
				b = append(b, '\n')
			case 't':
				b = append(b, '\t')
			case 'r':
				b = append(b, '\r')
			default:
				return "", 0, fallback
			}
		default:
			b = append(b, c)
		}
	}
	return "", 0, fallback // the scalar goes on to the next line
}

// flowParser parses a flow collection on one line.
type flowParser struct {
	p    *blockParser
	t    []byte
	i    int
	line int
}

func (f *flowParser) space() {
	for f.i < len(f.t) && f.t[f.i] == ' ' {
		f.i++
	}
}

func (f *flowParser) value() (*yaml.Node, error) {
	f.space()
	if f.i == len(f.t) {
		return nil, fallback
	}
	switch f.t[f.i] {
	case '[':
		return f.seq()
	case '{':
		return f.mapping()
	}
	return f.scalar()
}

func (f *flowParser) seq() (*yaml.Node, error) {
	n := f.p.newNode(yaml.SequenceNode, f.line)
	n.Style = yaml.FlowStyle
	start := len(f.p.stack)
	defer func() { n.Content = f.p.content(start) }()
	f.i++
	f.space()
	if f.i < len(f.t) && f.t[f.i] == ']' {
		f.i++
		return n, nil
	}
	for {
		v, err := f.value()
		if err != nil {
			return nil, err
		}
		f.p.stack = append(f.p.stack, v)
		f.space()
		if f.i == len(f.t) {
			return nil, fallback
		}
		switch f.t[f.i] {
		case ',':
			f.i++
			f.space()
			if f.i < len(f.t) && f.t[f.i] == ']' {
				return nil, fallback // a trailing comma
			}
		case ']':
			f.i++
			return n, nil
		default:
			return nil, fallback
		}
	}
}

func (f *flowParser) mapping() (*yaml.Node, error) {
	n := f.p.newNode(yaml.MappingNode, f.line)
	n.Style = yaml.FlowStyle
	start := len(f.p.stack)
	defer func() { n.Content = f.p.content(start) }()
	f.i++
	f.space()
	if f.i < len(f.t) && f.t[f.i] == '}' {
		f.i++
		return n, nil
	}
	for {
		k, err := f.scalar()
		if err != nil {
			return nil, err
		}
		if hasKey(f.p.stack[start:], k.Value) || k.Value == "<<" && k.Style == 0 {
			return nil, fallback
		}
		f.space()
		if f.i == len(f.t) || f.t[f.i] != ':' {
			return nil, fallback
		}
		f.i++
		if f.i < len(f.t) && f.t[f.i] != ' ' && k.Style == 0 {
			return nil, fallback
		}
		v, err := f.value()
		if err != nil {
			return nil, err
		}
		f.p.stack = append(f.p.stack, k, v)
		f.space()
		if f.i == len(f.t) {
			return nil, fallback
		}
		switch f.t[f.i] {
		case ',':
			f.i++
			f.space()
			if f.i < len(f.t) && f.t[f.i] == '}' {
				return nil, fallback
			}
		case '}':
			f.i++
			return n, nil
		default:
			return nil, fallback
		}
	}
}

// scalar parses a flow scalar: quoted, or plain up to , ] } or ": ".
func (f *flowParser) scalar() (*yaml.Node, error) {
	f.space()
	if f.i == len(f.t) {
		return nil, fallback
	}
	if c := f.t[f.i]; c == '"' || c == '\'' {
		v, n, err := quoted(f.t[f.i:])
		if err != nil {
			return nil, err
		}
		f.i += n
		node := f.p.scalarNode(v, f.line, true)
		node.Style = quoteStyle(c)
		return node, nil
	}
	start := f.i
	if c := f.t[f.i]; isIndicator(c) && c != '-' && c != ':' && c != '?' || (c == '-' || c == ':' || c == '?') && (f.i+1 == len(f.t) || f.t[f.i+1] == ' ') {
		return nil, fallback
	}
	for f.i < len(f.t) {
		c := f.t[f.i]
		if c == ',' || c == ']' || c == '}' || c == '[' || c == '{' || c == '#' && f.t[f.i-1] == ' ' {
			break
		}
		if c == ':' && (f.i+1 == len(f.t) || f.t[f.i+1] == ' ' || f.t[f.i+1] == ',' || f.t[f.i+1] == '}' || f.t[f.i+1] == ']') {
			break
		}
		f.i++
	}
	if f.i < len(f.t) && (f.t[f.i] == '[' || f.t[f.i] == '{' || f.t[f.i] == '#') {
		return nil, fallback
	}
	v := view(bytes.TrimRight(f.t[start:f.i], " "))
	if v == "" {
		return nil, fallback
	}
	return f.p.scalarNode(v, f.line, false), nil
}

// view returns b as a string without copying it. The fast path's scalars
// are views of the document's bytes, which are never written once read; the
// decoder copies every string it keeps (leanDecoder.str, scalar), so a
// target never holds on to the file it came from.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// plainTag resolves a plain scalar as yaml.v3 does for what the check
// looks at: null apart from everything else, and booleans and plain decimal
// numbers named in error messages. Other numeric forms are called strings.
func plainTag(v string) string {
	switch v {
	case "", "~", "null", "Null", "NULL":
		return "!!null"
	case "true", "True", "TRUE", "false", "False", "FALSE":
		return "!!bool"
	}
	digits, dot := 0, 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dot++
		case (c == '-' || c == '+') && i == 0:
		default:
			return "!!str"
		}
	}
	switch {
	case digits == 0 || dot > 1:
		return "!!str"
	case dot == 1:
		return "!!float"
	case len(v) > 1 && v[0] == '0':
		return "!!str" // octal and the like: yaml.v3's rules, not needed here
	}
	return "!!int"
}
