package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/unshim/unshim/internal/testutil"
)

// hostile are arguments that a shell would split, expand or end early.
var hostile = []string{
	"",
	" ",
	"two words",
	"it's",
	`"double"`,
	"'",
	"''",
	`'\''`,
	"$(touch /tmp/unshim-pwned)",
	"`touch /tmp/unshim-pwned`",
	"$HOME ${PATH} $0 $1 $@ $*",
	"a;b|c&d>e<f",
	"line1\nline2\n",
	"\ttab\r\n",
	"back\\slash\\",
	"*?[a-z]~",
	"-n",
	"--",
	"!event",
	"\x01\x7f\xff\xfe non-utf8",
	"ünïcödé ✓",
}

func TestShellQuote(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "empty", in: "", want: "''"},
		{name: "plain", in: "abc", want: "'abc'"},
		{name: "space", in: "a b", want: "'a b'"},
		{name: "quote", in: "it's", want: `'it'\''s'`},
		{name: "only quote", in: "'", want: `''\'''`},
		{name: "command substitution", in: "$(id)", want: "'$(id)'"},
		{name: "backticks", in: "`id`", want: "'`id`'"},
		{name: "newline", in: "a\nb", want: "'a\nb'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shellQuote(tt.in); got != tt.want {
				t.Errorf("shellQuote(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}

	// What a real shell makes of the quoted words is the argument itself.
	sh := testutil.RequireBinary(t, "sh")
	for _, arg := range hostile {
		out, err := exec.Command(sh, "-c", "printf %s "+shellQuote(arg)).Output()
		if err != nil {
			t.Fatalf("sh -c printf %%s %s: %v", shellQuote(arg), err)
		}
		if string(out) != arg {
			t.Errorf("sh got %q from %s, want %q", out, shellQuote(arg), arg)
		}
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name    string
		sudo    bool
		argv    []string
		want    string
		wantErr bool
	}{
		{name: "root", argv: []string{"systemctl", "stop", "docker"}, want: "'systemctl' 'stop' 'docker'"},
		{name: "sudo", sudo: true, argv: []string{"systemctl", "stop", "docker"}, want: "'sudo' '-n' '--' 'systemctl' 'stop' 'docker'"},
		{name: "sudo keeps hostile words one argument each", sudo: true, argv: []string{"rm", "-f", "--", "a b; rm -rf /"},
			want: `'sudo' '-n' '--' 'rm' '-f' '--' 'a b; rm -rf /'`},
		{name: "empty", argv: nil, wantErr: true},
		{name: "NUL", argv: []string{"echo", "a\x00b"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := commandLine(tt.sudo, tt.argv)
			if (err != nil) != tt.wantErr {
				t.Fatalf("commandLine: err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("commandLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSSHAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"node1", "node1:22"},
		{"node1:2222", "node1:2222"},
		{"10.0.0.1", "10.0.0.1:22"},
		{"::1", "[::1]:22"},
		{"[::1]", "[::1]:22"},
		{"[::1]:2222", "[::1]:2222"},
	}
	for _, tt := range tests {
		if got := sshAddr(tt.in); got != tt.want {
			t.Errorf("sshAddr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDialSSHContext(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	writeKey(t, key)
	known := filepath.Join(dir, "known_hosts")
	writeFile(t, known, nil, 0o644)

	// A server that accepts and then never speaks.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = DialSSH(ctx, SSHConfig{Host: l.Addr().String(), User: "root", KeyFile: key, KnownHostsFile: known})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("DialSSH returned after %v", d)
	}
}

// sshServer is a real sshd on 127.0.0.1 for one test.
type sshServer struct {
	Addr       string
	HostKey    ssh.PublicKey
	KeyFile    string // the user's private key, in authorized_keys
	UserSigner ssh.Signer
	KnownHosts string // a known_hosts file with HostKey
	Dir        string
}

// startSSHD starts sshd with a new host key and a new user key that may log
// in as any user; it is stopped when the test ends.
func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	testutil.RequireRoot(t)
	sshdPath := requireSbin(t, "sshd")
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is 0700, and sshd reads authorized_keys as
	// the user logging in, who may not be root.
	dir, err := os.MkdirTemp("", "unshim-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	s := &sshServer{Dir: dir, KeyFile: filepath.Join(dir, "id_ed25519")}
	hostSigner := writeKey(t, filepath.Join(dir, "host_ed25519"))
	s.HostKey = hostSigner.PublicKey()
	s.UserSigner = writeKey(t, s.KeyFile)
	writeFile(t, filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(s.UserSigner.PublicKey()), 0o644)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(s.Addr)

	s.KnownHosts = filepath.Join(dir, "known_hosts")
	writeFile(t, s.KnownHosts, []byte(knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey)+"\n"), 0o644)

	config := strings.Join([]string{
		"Port " + port,
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"StrictModes no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"LogLevel VERBOSE",
		"",
	}, "\n")
	cfgPath := filepath.Join(dir, "sshd_config")
	writeFile(t, cfgPath, []byte(config), 0o644)

	cmd := testutil.StartDaemon(t, filepath.Join(dir, "sshd.log"), 5*time.Second, sshdPath, "-D", "-e", "-f", cfgPath)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		// Signal 0 fails once sshd has exited (e.g. the port was taken).
		if time.Now().After(deadline) || cmd.Process.Signal(syscall.Signal(0)) != nil {
			b, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Fatalf("sshd did not listen on %s: %v\n%s", s.Addr, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireSbin is testutil.RequireBinary that also looks in /usr/sbin and
// /sbin, which a non-root PATH may lack, and returns an absolute path (sshd
// re-executes itself by its absolute path).
func requireSbin(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	p := testutil.RequireBinary(t, name)
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p
}

func writeKey(t *testing.T, path string) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, pem.EncodeToMemory(block), 0o600)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
}

// dial logs in with cfg filled from s where left empty, and closes the
// connection when the test ends.
func (s *sshServer) dial(t *testing.T, cfg SSHConfig) (*SSH, error) {
	t.Helper()
	if cfg.Host == "" {
		cfg.Host = s.Addr
	}
	if cfg.User == "" {
		cfg.User = "root"
	}
	if cfg.KnownHostsFile == "" {
		cfg.KnownHostsFile = s.KnownHosts
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := DialSSH(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestSSH(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	srv := startSSHD(t)
	c, err := srv.dial(t, SSHConfig{KeyFile: srv.KeyFile})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if c.Sudo() {
		t.Errorf("root login uses sudo")
	}
	ctx := context.Background()

	t.Run("run", func(t *testing.T) {
		out, err := c.Run(ctx, "sh", "-c", "echo out; echo err >&2")
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if got := string(out); !strings.Contains(got, "out\n") || !strings.Contains(got, "err\n") {
			t.Errorf("combined output = %q, want out and err", got)
		}
	})

	t.Run("run failure keeps exit status and output", func(t *testing.T) {
		out, err := c.Run(ctx, "sh", "-c", "echo oops >&2; exit 3")
		var ee *ExecError
		if !errors.As(err, &ee) {
			t.Fatalf("err = %v (%T), want *ExecError", err, err)
		}
		var xe *ssh.ExitError
		if !errors.As(err, &xe) || xe.ExitStatus() != 3 {
			t.Errorf("err = %v, want exit status 3", err)
		}
		if string(out) != "oops\n" || string(ee.Output) != "oops\n" {
			t.Errorf("output = %q, ExecError.Output = %q, want %q", out, ee.Output, "oops\n")
		}
		if !strings.Contains(err.Error(), "oops") {
			t.Errorf("error %q does not show the output", err)
		}
	})

	t.Run("missing command", func(t *testing.T) {
		_, err := c.Run(ctx, "unshim-no-such-command")
		var xe *ssh.ExitError
		if !errors.As(err, &xe) || xe.ExitStatus() != 127 {
			t.Errorf("err = %v, want exit status 127", err)
		}
	})

	t.Run("hostile arguments arrive unchanged", func(t *testing.T) {
		for _, arg := range hostile {
			out, err := c.Run(ctx, "printf", "%s", arg)
			if err != nil {
				t.Fatalf("printf %%s %q: %v", arg, err)
			}
			if !bytes.Equal(out, []byte(arg)) {
				t.Errorf("printf %%s %q printed %q", arg, out)
			}
		}
		// All at once, each its own argument.
		out, err := c.Run(ctx, append([]string{"printf", `%s\0`}, hostile...)...)
		if err != nil {
			t.Fatalf("printf all: %v", err)
		}
		if want := strings.Join(hostile, "\x00") + "\x00"; string(out) != want {
			t.Errorf("printf all = %q, want %q", out, want)
		}
		if _, err := os.Stat("/tmp/unshim-pwned"); err == nil {
			t.Errorf("an argument was run as a command")
		}
	})

	t.Run("files", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a dir\n", "it's $(here)")
		path := filepath.Join(dir, "file `name`\n.bin")
		data := make([]byte, 0, 3*256)
		for i := range 3 * 256 {
			data = append(data, byte(i))
		}

		if _, err := c.ReadFile(ctx, path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile missing: err = %v, want fs.ErrNotExist", err)
		}
		if _, err := c.Mode(ctx, path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Mode missing: err = %v, want fs.ErrNotExist", err)
		}
		if err := c.WriteFile(ctx, path, data, 0o640); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		got, err := c.ReadFile(ctx, path)
		if err != nil {
			t.Fatalf("ReadFile: %v", err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("ReadFile = %d bytes %q..., want %d bytes", len(got), got[:min(len(got), 16)], len(data))
		}
		if local, err := os.ReadFile(path); err != nil || !bytes.Equal(local, data) {
			t.Errorf("file on disk differs (err %v)", err)
		}
		if m, err := c.Mode(ctx, path); err != nil || m != 0o640 {
			t.Errorf("Mode = %o, %v; want 640", m, err)
		}

		// Replace it: new content and mode, nothing left beside it.
		if err := c.WriteFile(ctx, path, []byte{}, 0o600); err != nil {
			t.Fatalf("WriteFile again: %v", err)
		}
		if got, err := c.ReadFile(ctx, path); err != nil || len(got) != 0 {
			t.Errorf("ReadFile empty = %q, %v", got, err)
		}
		if m, err := c.Mode(ctx, path); err != nil || m != 0o600 {
			t.Errorf("Mode = %o, %v; want 600", m, err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 {
			t.Errorf("dir holds %v (err %v), want the file alone", entries, err)
		}

		if err := c.Remove(ctx, path); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("file still there after Remove: %v", err)
		}
		if err := c.Remove(ctx, path); err != nil {
			t.Errorf("Remove missing: %v", err)
		}
		if _, err := c.ReadFile(ctx, path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile removed: err = %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("file errors", func(t *testing.T) {
		dir := t.TempDir()
		err := c.WriteFile(ctx, dir, []byte("x"), 0o644)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("WriteFile over a directory: err = %v, want a failure", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("WriteFile over a directory left %v", entries)
		}
		_, err = c.ReadFile(ctx, dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile of a directory: err = %v, want a failure", err)
		}
		if err != nil && !strings.Contains(err.Error(), "Is a directory") {
			t.Errorf("ReadFile of a directory: error %q does not say why", err)
		}
	})

	t.Run("cancel returns at once", func(t *testing.T) {
		// OpenSSH passes no signals to a root login's command, so it runs
		// on (see remotePID); the caller is not held up.
		pid := cancelSleep(t, c)
		t.Cleanup(func() {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		})
		// The connection is still usable.
		if _, err := c.Run(ctx, "true"); err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	})

	t.Run("stream", func(t *testing.T) {
		var buf bytes.Buffer
		if err := c.RunStream(ctx, &buf, "sh", "-c", "echo one; echo two >&2"); err != nil {
			t.Fatalf("RunStream: %v", err)
		}
		if got := buf.String(); !strings.Contains(got, "one\n") || !strings.Contains(got, "two\n") {
			t.Errorf("streamed %q", got)
		}
		buf.Reset()
		err := c.RunStream(ctx, &buf, "sh", "-c", "echo progress; exit 2")
		var ee *ExecError
		if !errors.As(err, &ee) || string(ee.Output) != "progress\n" || buf.String() != "progress\n" {
			t.Errorf("RunStream failure: err = %v, streamed %q", err, buf.String())
		}
	})
}

// cancelSleep runs a long sleep on c, cancels it after 300ms, and returns
// the sleep's pid (sshd runs on this machine).
func cancelSleep(t *testing.T, c *SSH) int {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, "sh", "-c", `echo $$ > "$1"; exec sleep 30`, "sh", pidFile)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v", d)
	}
	// The command runs on after the cancel; on a loaded machine the remote
	// shell may not have written its pid by the time Run returned.
	var data []byte
	for i := 0; i < 200; i++ {
		if data, err = os.ReadFile(pidFile); err == nil && len(strings.TrimSpace(string(data))) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}

// gone waits up to 5s for process pid to end.
func gone(pid int) bool {
	for range 100 {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func TestSSHHostKey(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	srv := startSSHD(t)
	other := writeKey(t, filepath.Join(t.TempDir(), "other")).PublicKey()
	dir := t.TempDir()

	empty := filepath.Join(dir, "empty_known_hosts")
	writeFile(t, empty, nil, 0o644)
	// Keys for other hosts, but not this one.
	elsewhere := filepath.Join(dir, "elsewhere_known_hosts")
	writeFile(t, elsewhere, []byte(knownhosts.Line([]string{"node9.example"}, srv.HostKey)+"\n"), 0o644)
	wrong := filepath.Join(dir, "wrong_known_hosts")
	writeFile(t, wrong, []byte("# a comment\n"+knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, other)+"\n"), 0o644)
	revoked := filepath.Join(dir, "revoked_known_hosts")
	writeFile(t, revoked, []byte("@revoked * "+string(ssh.MarshalAuthorizedKey(srv.HostKey))), 0o644)
	missing := filepath.Join(dir, "no_such_known_hosts")

	tests := []struct {
		name     string
		file     string
		unknown  bool     // a *HostKeyError for an unknown host
		mismatch bool     // a *HostKeyError for a changed key
		wantMsg  []string // the message says these
	}{
		{name: "unknown host", file: empty, unknown: true,
			wantMsg: []string{"is not in " + empty, "ssh-keyscan -p ", " 127.0.0.1 >> " + empty, "SHA256:"}},
		{name: "other hosts only", file: elsewhere, unknown: true,
			wantMsg: []string{"is not in " + elsewhere, "ssh-keyscan"}},
		{name: "changed key", file: wrong, mismatch: true,
			wantMsg: []string{"does not match", wrong + ":2", "ssh-keygen -R", "ssh-keyscan"}},
		{name: "revoked key", file: revoked,
			wantMsg: []string{"revoked in " + revoked}},
		{name: "no known_hosts file", file: missing,
			wantMsg: []string{missing + " does not exist", "ssh-keyscan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := srv.dial(t, SSHConfig{KeyFile: srv.KeyFile, KnownHostsFile: tt.file})
			if err == nil {
				t.Fatalf("dial succeeded with %s (sudo %v)", tt.file, c.Sudo())
			}
			t.Logf("error: %v", err)
			var hk *HostKeyError
			isHK := errors.As(err, &hk)
			if tt.unknown || tt.mismatch {
				if !isHK {
					t.Fatalf("err = %v (%T), want a *HostKeyError", err, err)
				}
				if tt.unknown != (len(hk.Known) == 0) {
					t.Errorf("HostKeyError.Known = %v, want unknown %v", hk.Known, tt.unknown)
				}
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
		})
	}
}

func TestSSHAuth(t *testing.T) {
	srv := startSSHD(t)

	t.Run("agent", func(t *testing.T) {
		keyring := agent.NewKeyring()
		block, _ := pem.Decode(mustRead(t, srv.KeyFile))
		priv, err := ssh.ParseRawPrivateKey(pem.EncodeToMemory(block))
		if err != nil {
			t.Fatal(err)
		}
		if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(t.TempDir(), "agent.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				go func() { _ = agent.ServeAgent(keyring, conn); conn.Close() }()
			}
		}()
		t.Setenv("SSH_AUTH_SOCK", sock)
		c, err := srv.dial(t, SSHConfig{})
		if err != nil {
			t.Fatalf("dial with the agent: %v", err)
		}
		if out, err := c.Run(context.Background(), "id", "-un"); err != nil || string(out) != "root\n" {
			t.Errorf("id -un = %q, %v", out, err)
		}
	})

	t.Run("key not authorized", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", "")
		key := filepath.Join(t.TempDir(), "stranger")
		writeKey(t, key)
		_, err := srv.dial(t, SSHConfig{KeyFile: key})
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("err = %v, want an authentication failure", err)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", "")
		_, err := srv.dial(t, SSHConfig{})
		if err == nil || !strings.Contains(err.Error(), "no credentials") {
			t.Errorf("err = %v, want no credentials", err)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// addUser creates a local user for the test and removes it afterwards.
// Its password field is "*": no password, but not locked for sshd.
func addUser(t *testing.T, name string, sudoers string) {
	t.Helper()
	useradd := requireSbin(t, "useradd")
	userdel := requireSbin(t, "userdel")
	_ = exec.Command(userdel, name).Run() // left by an earlier, killed run
	if out, err := exec.Command(useradd, "-M", "-d", "/", "-s", "/bin/sh", "-p", "*", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command(userdel, name).Run() })
	if sudoers == "" {
		return
	}
	path := "/etc/sudoers.d/" + name
	writeFile(t, path, []byte(sudoers), 0o440)
	t.Cleanup(func() { os.Remove(path) })
}

func TestSSHSudo(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	srv := startSSHD(t)
	testutil.RequireBinary(t, "sudo")
	ctx := context.Background()

	t.Run("passwordless sudo", func(t *testing.T) {
		const user = "unshim-ssh-sudo"
		addUser(t, user, user+" ALL=(ALL:ALL) NOPASSWD: ALL\n")
		c, err := srv.dial(t, SSHConfig{User: user, KeyFile: srv.KeyFile})
		if err != nil {
			t.Fatalf("dial as %s: %v", user, err)
		}
		if !c.Sudo() {
			t.Fatalf("%s does not use sudo", user)
		}
		if out, err := c.Run(ctx, "id", "-u"); err != nil || string(out) != "0\n" {
			t.Errorf("id -u through sudo = %q, %v; want 0", out, err)
		}
		for _, arg := range hostile {
			out, err := c.Run(ctx, "printf", "%s", arg)
			if err != nil || string(out) != arg {
				t.Errorf("printf %%s %q through sudo = %q, %v", arg, out, err)
			}
		}
		path := filepath.Join(t.TempDir(), "root only", "it's.conf")
		if err := c.WriteFile(ctx, path, []byte("x = 1\n"), 0o600); err != nil {
			t.Fatalf("WriteFile through sudo: %v", err)
		}
		if got, err := c.ReadFile(ctx, path); err != nil || string(got) != "x = 1\n" {
			t.Errorf("ReadFile through sudo = %q, %v", got, err)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("stat = %v, %v; want mode 600", st, err)
		}
		if _, err := c.ReadFile(ctx, path+".missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile missing through sudo: err = %v, want fs.ErrNotExist", err)
		}
		// sudo passes on the TERM sent on cancellation.
		if pid := cancelSleep(t, c); !gone(pid) {
			t.Errorf("the canceled command (pid %d) still runs", pid)
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
		_, err = c.Run(ctx, "sh", "-c", "exit 5")
		var xe *ssh.ExitError
		if !errors.As(err, &xe) || xe.ExitStatus() != 5 {
			t.Errorf("exit 5 through sudo: err = %v", err)
		}
	})

	t.Run("sudo wants a password", func(t *testing.T) {
		const user = "unshim-ssh-nopw"
		addUser(t, user, "")
		_, err := srv.dial(t, SSHConfig{User: user, KeyFile: srv.KeyFile})
		if err == nil {
			t.Fatalf("dial as %s succeeded; sudo needs a password there", user)
		}
		t.Logf("error: %v", err)
		for _, m := range []string{"sudo wants a password", "NOPASSWD", fmt.Sprintf("%s@%s", user, srv.Addr)} {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("error %q does not say %q", err, m)
			}
		}
	})
}
