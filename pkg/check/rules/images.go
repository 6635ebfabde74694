package rules

import (
	"path"
	"strings"
	"sync"
)

// imageMatcher finds the first catalog entry whose repository patterns match
// an image. It memoizes per image: a cluster runs the same images in many
// pods, and glob matching every pattern is the check's hottest loop.
type imageMatcher struct {
	patterns [][]string // per entry

	mu   sync.Mutex
	memo map[string]int
}

// maxMemo bounds the memo; past it, images are matched afresh.
const maxMemo = 8192

func newImageMatcher(patterns [][]string) *imageMatcher {
	return &imageMatcher{patterns: patterns, memo: map[string]int{}}
}

// match returns the index of the first entry matching image, or -1.
func (m *imageMatcher) match(image string) int {
	if len(m.patterns) == 0 || image == "" {
		return -1
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := m.memo[image]; ok {
		return i
	}
	i := m.scan(image)
	if len(m.memo) < maxMemo {
		m.memo[strings.Clone(image)] = i // image may be a view of a buffer reused later
	}
	return i
}

func (m *imageMatcher) scan(image string) int {
	repo, _ := imageRepo(image)
	forms := repoForms(repo)
	for i, ps := range m.patterns {
		for _, p := range ps {
			for _, form := range forms {
				if ok, _ := path.Match(p, form); ok {
					return i
				}
			}
		}
	}
	return -1
}
