// Command release builds unshim's release artifacts (pkg/release):
//
//	go run ./hack/release archives [-out dist] [-platforms linux/amd64,...] [-base-uri URI]
//	go run ./hack/release agent-image [-out dist] [-arch amd64] [-ref unshim-agent:VERSION]
//	go run ./hack/release man [-out dist/man]
//
// The version, commit and date come from git (the version from `git
// describe --tags`, else v0.0.0-SHORTCOMMIT; the date is the commit's, or
// SOURCE_DATE_EPOCH), or from -version, -commit and -date.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/unshim/unshim/pkg/manpages"
	"github.com/unshim/unshim/pkg/release"
	"github.com/unshim/unshim/pkg/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("want a verb: archives, agent-image or man")
	}
	verb := args[0]
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	out := fs.String("out", "dist", "output directory")
	ver := fs.String("version", "", "version to stamp (default: from git)")
	commit := fs.String("commit", "", "git commit to stamp (default: HEAD)")
	date := fs.String("date", "", "build date, RFC 3339 (default: SOURCE_DATE_EPOCH, else the commit's date)")
	platforms := fs.String("platforms", "", "comma-separated OS/ARCH list (default linux/amd64,linux/arm64,windows/amd64)")
	baseURI := fs.String("base-uri", release.DefaultBaseURI, "where the archives are published, for the krew manifest")
	arch := fs.String("arch", "amd64", "agent-image: the image's architecture")
	ref := fs.String("ref", "", "agent-image: image name (default unshim-agent:VERSION)")
	license := fs.String("license", "LICENSE", "archives: the license file archived with each binary")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	stamp, err := gitStamp(ctx, *ver, *commit, *date)
	if err != nil {
		return err
	}
	o := release.Options{Dir: ".", License: *license, Out: *out, Stamp: stamp, BaseURI: *baseURI, Log: os.Stderr}
	switch verb {
	case "archives":
		for _, s := range strings.Split(*platforms, ",") {
			if s == "" {
				continue
			}
			p, err := release.ParsePlatform(s)
			if err != nil {
				return err
			}
			o.Platforms = append(o.Platforms, p)
		}
		res, err := release.Build(ctx, o)
		if err != nil {
			return err
		}
		fmt.Printf("%s\n%s\n", res.Checksums, res.Manifest)
		return nil
	case "agent-image":
		name := *ref
		if name == "" {
			name = "unshim-agent:" + stamp.Version
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		file := fmt.Sprintf("%s/unshim-agent-%s-linux-%s.tar", strings.TrimSuffix(*out, "/"), stamp.Version, *arch)
		img, err := release.BuildAgentImage(ctx, o, *arch, name, file)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(img)
	case "man":
		d, _ := time.Parse(time.RFC3339, stamp.BuildDate)
		return manpages.Write(*out, stamp.Version, d)
	}
	return fmt.Errorf("unknown verb %q: want archives, agent-image or man", verb)
}

// gitStamp fills what is not given from git and SOURCE_DATE_EPOCH.
func gitStamp(ctx context.Context, ver, commit, date string) (version.Stamp, error) {
	git := func(args ...string) (string, error) {
		b, err := exec.CommandContext(ctx, "git", args...).Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	s := version.Stamp{Version: ver, GitCommit: commit, BuildDate: date, GitTreeState: "clean"}
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err != nil {
		return s, err
	} else if st != "" {
		s.GitTreeState = "dirty"
	}
	var err error
	if s.GitCommit == "" {
		if s.GitCommit, err = git("rev-parse", "HEAD"); err != nil {
			return s, err
		}
	}
	if s.Version == "" {
		if tag, err := git("describe", "--tags", "--exact-match"); err == nil {
			s.Version = tag
		} else {
			s.Version = "v0.0.0-" + s.GitCommit[:12]
		}
	}
	if s.BuildDate == "" {
		if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
			sec, err := strconv.ParseInt(epoch, 10, 64)
			if err != nil {
				return s, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", epoch, err)
			}
			s.BuildDate = time.Unix(sec, 0).UTC().Format(time.RFC3339)
		} else {
			ct, err := git("log", "-1", "--format=%ct", s.GitCommit)
			if err != nil {
				return s, err
			}
			sec, err := strconv.ParseInt(ct, 10, 64)
			if err != nil {
				return s, fmt.Errorf("commit time %q: %w", ct, err)
			}
			s.BuildDate = time.Unix(sec, 0).UTC().Format(time.RFC3339)
		}
	}
	return s, nil
}
