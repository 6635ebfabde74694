// Package specfile reads a RuntimeMigration from a file or stdin for the
// rollout commands, checked as the driver will check it.
package specfile

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/cmd"
)

// ReadFile reads and checks a RuntimeMigration from name ("-" for in). A
// bad file is an ExitError with code ExitFailure that names the file.
func ReadFile(name string, in io.Reader) (*v1alpha1.RuntimeMigration, error) {
	if name == "" {
		return nil, &cmd.ExitError{Code: cmd.ExitFailure, Err: errors.New("-f FILE is required")}
	}
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(in)
		name = "stdin"
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("read %s: %w", name, err)}
	}
	m, err := v1alpha1.Decode(data, name)
	if err != nil {
		return nil, &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	return m, nil
}
