package phases

import (
	"context"

	"github.com/unshim/unshim/pkg/migrate"
)

// NewBackupPhase backs up files before any phase changes them. It has no
// rollback: each phase that writes a file records the write, and the
// runner restores it from the backup when it undoes that phase.
func NewBackupPhase(paths ...string) migrate.Phase {
	return migrate.Phase{
		Name:  "backup",
		Short: "Back up the files the migration will change",
		Run: func(ctx context.Context, d migrate.Data) error {
			for _, p := range paths {
				if err := d.Store().BackupFile(ctx, d.Journal(), p); err != nil {
					return err
				}
			}
			return nil
		},
		Plan: func(context.Context, migrate.Data) ([]string, error) {
			lines := make([]string, len(paths))
			for i, p := range paths {
				lines[i] = "back up " + p
			}
			return lines, nil
		},
	}
}
