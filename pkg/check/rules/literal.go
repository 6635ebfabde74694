package rules

import (
	"regexp/syntax"
	"strings"
)

// requiredLiteral returns a string every match of pattern contains (the
// longest literal of its top-level sequence, lower-cased when the pattern
// ignores case) and whether it ignores case; "" when there is none. The
// configuration rules test it with strings.Contains before running the
// regular expression: most ConfigMap values cannot match, and a backtracking
// match over a long value is the check's costliest step.
func requiredLiteral(pattern string) (lit string, fold bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	for _, s := range subs {
		if s.Op != syntax.OpLiteral {
			continue
		}
		l := string(s.Rune)
		if len(l) > len(lit) {
			lit, fold = l, s.Flags&syntax.FoldCase != 0
		}
	}
	if fold {
		lit = strings.ToLower(lit)
	}
	return lit, fold
}
