package rules

import (
	"regexp/syntax"
	"strings"
)

// requiredLiterals returns strings one of which every match of pattern
// contains (lower-cased when the pattern ignores case), and whether it
// ignores case; nil when none is known. The configuration rules test them
// with strings.Contains before running the regular expression: most
// ConfigMap values cannot match, and a backtracking match over a long
// value is the check's costliest step. An alternation yields one literal
// per branch ("parser" or "docker_mode"), so a pattern that starts with
// one is filtered too.
func requiredLiterals(pattern string) (lits []string, fold bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, false
	}
	lits, fold = required(re.Simplify(), 0)
	if fold {
		for i, l := range lits {
			lits[i] = strings.ToLower(l)
		}
	}
	return lits, fold
}

// required returns strings one of which every match of re contains, and
// whether any of them is matched ignoring case.
func required(re *syntax.Regexp, depth int) ([]string, bool) {
	if depth > 32 {
		return nil, false
	}
	switch re.Op {
	case syntax.OpLiteral:
		return []string{string(re.Rune)}, re.Flags&syntax.FoldCase != 0
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0], depth+1)
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0], depth+1)
		}
	case syntax.OpConcat:
		// The element whose shortest literal is longest filters best.
		var best []string
		var bestFold bool
		score := 0
		for _, s := range re.Sub {
			lits, fold := required(s, depth+1)
			if len(lits) == 0 {
				continue
			}
			shortest := len(lits[0])
			for _, l := range lits[1:] {
				shortest = min(shortest, len(l))
			}
			if shortest > score {
				best, bestFold, score = lits, fold, shortest
			}
		}
		return best, bestFold
	case syntax.OpAlternate:
		var all []string
		fold := false
		for _, s := range re.Sub {
			lits, f := required(s, depth+1)
			if len(lits) == 0 {
				return nil, false // a branch with no literal: anything may match
			}
			all, fold = append(all, lits...), fold || f
		}
		return all, fold
	}
	return nil, false
}

// containsAny reports whether s contains one of lits.
func containsAny(s string, lits []string) bool {
	for _, l := range lits {
		if strings.Contains(s, l) {
			return true
		}
	}
	return false
}
