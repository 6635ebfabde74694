package phases

import (
	"context"

	"github.com/unshim/unshim/pkg/migrate"
)

// NewBackupPhase backs up files before any phase changes them; rollback
// restores every file the journal backed up, byte for byte, and removes the
// ones that did not exist.
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
		Rollback: func(ctx context.Context, d migrate.Data) error {
			return d.Store().Restore(ctx, d.Journal())
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
