package lab

import (
	"context"
	"fmt"
	"time"
)

// FromEnv returns the running lab named by $UNSHIM_LAB (or the default
// directory), checking that its apiserver answers.
func FromEnv() (*Lab, error) {
	l, err := Load(DefaultDir())
	if err != nil {
		return nil, fmt.Errorf("%w (start one with `unshim lab up` or `make test`)", err)
	}
	if _, dead := l.Running(); len(dead) > 0 {
		return nil, fmt.Errorf("lab in %s is not running: %v stopped", l.Dir, dead)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.waitReady(ctx, 15*time.Second); err != nil {
		return nil, fmt.Errorf("lab in %s does not answer: %w", l.Dir, err)
	}
	return l, nil
}
