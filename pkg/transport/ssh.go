package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	pathpkg "path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig says how to reach a node over SSH.
type SSHConfig struct {
	// Host is "host" or "host:port"; the port is 22 when left out.
	Host string
	// User is the login name. When it is not root (uid 0 on the node), every
	// command runs through "sudo -n --", which must not ask for a password.
	User string
	// KeyFile is a private key file (OpenSSH or PEM, without a passphrase).
	// It may be empty when an ssh-agent holds the key.
	KeyFile string
	// AgentSocket is the ssh-agent socket; empty means $SSH_AUTH_SOCK, and
	// no agent is used when both are empty.
	AgentSocket string
	// KnownHostsFile is checked for the node's host key; empty means
	// ~/.ssh/known_hosts. Host keys are always checked.
	KnownHostsFile string
	// Timeout bounds the connection and login; 0 means 20 seconds.
	Timeout time.Duration
}

// SSH acts on a remote node over one SSH connection, opening a session per
// call. Commands reach the node as one command line for the login shell, so
// the login shell must be a POSIX shell (sh, bash, dash, zsh); each argument
// is single-quoted and arrives unchanged. Close it when done.
type SSH struct {
	client *ssh.Client
	name   string // user@host:port, for messages
	sudo   bool
}

var _ Transport = (*SSH)(nil)

// notExistStatus is the exit status of the fixed scripts below for a
// missing path, so that a missing file is told apart from any other failure.
const notExistStatus = 44

// HostKeyError is a host key the known_hosts file does not vouch for.
type HostKeyError struct {
	// Host is the host:port dialled, File the known_hosts file checked.
	Host, File string
	// Key is the key the node presented.
	Key ssh.PublicKey
	// Known holds the keys File lists for Host; empty means Host is unknown,
	// otherwise the node presented a different key.
	Known []knownhosts.KnownKey
	// Revoked is set when File marks Key as revoked.
	Revoked bool
}

func (e *HostKeyError) Error() string {
	key, scan := "(no key)", keyscanCommand(e.Host, "")
	if e.Key != nil {
		key = e.Key.Type() + " " + ssh.FingerprintSHA256(e.Key)
		scan = keyscanCommand(e.Host, e.Key.Type())
	}
	switch {
	case e.Revoked:
		return fmt.Sprintf("host key of %s (%s) is marked revoked in %s", e.Host, key, e.File)
	case len(e.Known) == 0:
		return fmt.Sprintf("host key of %s (%s) is not in %s; check the fingerprint on the node "+
			"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and, if it matches, add the key with: %s >> %s",
			e.Host, key, e.File, scan, e.File)
	default:
		return fmt.Sprintf("host key of %s (%s) does not match the one in %s:%d: the connection may be "+
			"intercepted, or the node was reinstalled; if it was, replace the entry with: "+
			"ssh-keygen -R '%s' -f %s && %s >> %s",
			e.Host, key, e.Known[0].Filename, e.Known[0].Line, knownhosts.Normalize(e.Host), e.File, scan, e.File)
	}
}

// keyscanCommand is the ssh-keyscan command line that prints addr's host
// key of type keyType (all types when empty) in known_hosts form.
func keyscanCommand(addr, keyType string) string {
	host, port, _ := net.SplitHostPort(addr)
	cmd := "ssh-keyscan"
	if port != "22" {
		cmd += " -p " + port
	}
	switch {
	case keyType == ssh.KeyAlgoRSA:
		cmd += " -t rsa"
	case keyType == ssh.KeyAlgoED25519:
		cmd += " -t ed25519"
	case strings.HasPrefix(keyType, "ecdsa-"):
		cmd += " -t ecdsa"
	}
	return cmd + " " + host
}

// DialSSH connects and logs in to cfg.Host, checking its host key against
// the known_hosts file, and finds out whether commands need sudo.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	if cfg.Host == "" {
		return nil, errors.New("ssh: no host given")
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("ssh to %s: no user given", cfg.Host)
	}
	addr := sshAddr(cfg.Host)
	name := cfg.User + "@" + addr
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}

	hostKeys, khFile, err := knownHostsCallback(cfg.KnownHostsFile, addr)
	if err != nil {
		return nil, fmt.Errorf("ssh to %s: %w", name, err)
	}
	auth, closeAgent, err := authMethod(cfg)
	if err != nil {
		return nil, fmt.Errorf("ssh to %s: %w", name, err)
	}
	defer closeAgent()

	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ssh to %s: %w", name, err)
	}
	config := &ssh.ClientConfig{
		User: cfg.User,
		Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := hostKeys(hostname, remote, key)
			var ke *knownhosts.KeyError
			var re *knownhosts.RevokedError
			switch {
			case errors.As(err, &ke):
				return &HostKeyError{Host: addr, File: khFile, Key: key, Known: ke.Want}
			case errors.As(err, &re):
				return &HostKeyError{Host: addr, File: khFile, Key: key, Revoked: true}
			}
			return err
		},
		// Offer only the algorithms of the keys known_hosts has for the node,
		// so that a node with several host keys presents one we can check.
		HostKeyAlgorithms: knownAlgorithms(hostKeys, addr, conn.RemoteAddr()),
	}

	// The handshake and login may block: bound them by the timeout and ctx.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	stop()
	if ctx.Err() != nil {
		err = ctx.Err() // rather than the i/o timeout it caused
	}
	if err != nil {
		conn.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, fmt.Errorf("ssh to %s: %w", name, hk)
		}
		return nil, fmt.Errorf("ssh to %s: %w", name, err)
	}
	_ = conn.SetDeadline(time.Time{})
	s := &SSH{client: ssh.NewClient(c, chans, reqs), name: name}

	if err := s.detectSudo(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// detectSudo asks the node for the login's uid; a user other than root
// needs a sudo that runs without a password.
func (s *SSH) detectSudo(ctx context.Context) error {
	out, err := s.Run(ctx, "id", "-u")
	if err != nil {
		return fmt.Errorf("ssh to %s: find the user id: %w", s.name, err)
	}
	if strings.TrimSpace(string(out)) == "0" {
		return nil
	}
	s.sudo = true
	if _, err := s.Run(ctx, "true"); err != nil {
		return fmt.Errorf("ssh to %s: the user is not root, and sudo -n does not work: %w", s.name, err)
	}
	return nil
}

// Sudo tells whether commands run through sudo.
func (s *SSH) Sudo() bool { return s.sudo }

// Close closes the connection.
func (s *SSH) Close() error { return s.client.Close() }

// Run runs argv on the node and returns its combined output.
func (s *SSH) Run(ctx context.Context, argv ...string) ([]byte, error) {
	var out lockedBuffer
	err := s.run(ctx, argv, nil, &out, &out)
	return out.Bytes(), s.fail(err, out.Bytes())
}

// RunStream runs argv on the node and copies its combined output to w as it
// comes; a failure is an *ExecError that keeps the end of the output.
func (s *SSH) RunStream(ctx context.Context, w io.Writer, argv ...string) error {
	tail := &tailBuffer{max: 64 << 10}
	out := &lockedWriter{w: io.MultiWriter(w, tail)}
	err := s.run(ctx, argv, nil, out, out)
	return s.fail(err, tail.Bytes())
}

// run runs argv in a new session. A failure is an *ExecError without its
// output (see fail); a non-zero exit wraps an *ssh.ExitError.
func (s *SSH) run(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmdline, err := commandLine(s.sudo, argv)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &ExecError{Argv: argv, Err: err}
	}
	sess, err := s.client.NewSession()
	if err != nil {
		return &ExecError{Argv: argv, Err: fmt.Errorf("open session to %s: %w", s.name, err)}
	}
	defer sess.Close()
	outGate, errGate := &gate{w: stdout}, &gate{w: stderr}
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, outGate, errGate

	done := make(chan error, 1)
	go func() { done <- sess.Run(cmdline) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Ask the command to stop (OpenSSH passes the signal on for
		// sessions of users other than root; sudo relays it), close the
		// session, and return at once; what the command still prints is
		// dropped.
		outGate.close()
		errGate.close()
		_ = sess.Signal(ssh.SIGTERM)
		_ = sess.Close()
		return &ExecError{Argv: argv, Err: ctx.Err()}
	}
	if err != nil {
		return &ExecError{Argv: argv, Err: err}
	}
	return nil
}

// gate passes writes on until it is closed, and drops them after.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.w == nil {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// fail puts output into an *ExecError and says so when sudo refused to run
// the command for want of a password.
func (s *SSH) fail(err error, output []byte) error {
	var ee *ExecError
	if !errors.As(err, &ee) {
		return err
	}
	ee.Output = output
	if s.sudo && (bytes.Contains(output, []byte("sudo: a password is required")) ||
		bytes.Contains(output, []byte("sudo: a terminal is required"))) {
		ee.Err = fmt.Errorf("sudo wants a password: allow the user NOPASSWD in /etc/sudoers.d, or log in as root: %w", ee.Err)
	}
	return err
}

// script runs a fixed sh script with args as its positional parameters.
func (s *SSH) script(ctx context.Context, script string, stdin io.Reader, stdout io.Writer, args ...string) error {
	var stderr bytes.Buffer
	argv := append([]string{"sh", "-c", script, "sh"}, args...)
	err := s.run(ctx, argv, stdin, stdout, &stderr)
	return s.fail(err, stderr.Bytes())
}

// ReadFile returns a file's content.
func (s *SSH) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var out bytes.Buffer
	err := s.script(ctx, `[ -e "$1" ] || exit 44; exec cat -- "$1"`, nil, &out, path)
	if err != nil {
		return nil, s.fileError("read", path, err)
	}
	return out.Bytes(), nil
}

// writeScript writes stdin to a temporary file in directory $3 (the one of
// $1, made by Go: $(dirname) would drop a trailing newline), gives it mode
// $2, syncs it and renames it over $1.
const writeScript = `set -e
mkdir -p -- "$3"
t=$(mktemp -- "$3/.unshim-XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat > "$t"
chmod -- "$2" "$t"
sync -- "$t" 2>/dev/null || sync
mv -f -T -- "$t" "$1"
trap - EXIT`

// WriteFile replaces a file atomically, creating its directory.
func (s *SSH) WriteFile(ctx context.Context, path string, data []byte, perm os.FileMode) error {
	mode := uint32(perm.Perm())
	if perm&os.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if perm&os.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if perm&os.ModeSticky != 0 {
		mode |= 0o1000
	}
	err := s.script(ctx, writeScript, bytes.NewReader(data), io.Discard,
		path, strconv.FormatUint(uint64(mode), 8), pathpkg.Dir(path))
	if err != nil {
		return s.fileError("write", path, err)
	}
	return nil
}

// Remove deletes a file; a missing file is not an error.
func (s *SSH) Remove(ctx context.Context, path string) error {
	if err := s.script(ctx, `exec rm -f -- "$1"`, nil, io.Discard, path); err != nil {
		return s.fileError("remove", path, err)
	}
	return nil
}

// Mode returns a file's permission bits (following symbolic links).
func (s *SSH) Mode(ctx context.Context, path string) (os.FileMode, error) {
	var out bytes.Buffer
	err := s.script(ctx, `[ -e "$1" ] || exit 44; exec stat -L -c %a -- "$1"`, nil, &out, path)
	if err != nil {
		return 0, s.fileError("stat", path, err)
	}
	m, err := strconv.ParseUint(strings.TrimSpace(out.String()), 8, 32)
	if err != nil {
		return 0, fmt.Errorf("stat %s on %s: parse mode %q: %w", path, s.name, out.String(), err)
	}
	return os.FileMode(m) & os.ModePerm, nil
}

// fileError wraps a failed file script; notExistStatus becomes fs.ErrNotExist.
func (s *SSH) fileError(op, path string, err error) error {
	var xe *ssh.ExitError
	if errors.As(err, &xe) && xe.ExitStatus() == notExistStatus {
		return fmt.Errorf("%s %s on %s: %w", op, path, s.name, fs.ErrNotExist)
	}
	return fmt.Errorf("%s %s on %s: %w", op, path, s.name, err)
}

// commandLine builds the command line the node's login shell runs.
func commandLine(sudo bool, argv []string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("run: empty command")
	}
	if sudo {
		argv = append([]string{"sudo", "-n", "--"}, argv...)
	}
	q := make([]string, len(argv))
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return "", fmt.Errorf("run %q: argument %d holds a NUL byte", argv, i)
		}
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " "), nil
}

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is
// special, and a single quote itself is closed, escaped and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sshAddr adds port 22 to a host without one.
func sshAddr(host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "22")
}

// knownHostsCallback reads the known_hosts file (default ~/.ssh/known_hosts).
func knownHostsCallback(file, addr string) (ssh.HostKeyCallback, string, error) {
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, "", fmt.Errorf("find known_hosts: %w", err)
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, file, fmt.Errorf("known_hosts file %s does not exist; check the node's host key "+
				"fingerprint and add it with: %s >> %s: %w", file, keyscanCommand(addr, ""), file, err)
		}
		return nil, file, fmt.Errorf("read known_hosts file %s: %w", file, err)
	}
	return cb, file, nil
}

// knownAlgorithms lists the host key algorithms of the keys cb knows for
// addr, or nil (any) when it knows none.
func knownAlgorithms(cb ssh.HostKeyCallback, addr string, remote net.Addr) []string {
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(cb(addr, remote, probe), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		t := k.Key.Type()
		names := []string{t}
		if t == ssh.KeyAlgoRSA {
			names = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	return algos
}

// authMethod offers the key file's key and the agent's keys as one
// publickey method (the client tries each method name only once).
func authMethod(cfg SSHConfig) (ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	if cfg.KeyFile != "" {
		pem, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var pe *ssh.PassphraseMissingError
		if errors.As(err, &pe) {
			return nil, nil, fmt.Errorf("key %s has a passphrase: load it into ssh-agent (ssh-add %s) and leave the key file out", cfg.KeyFile, cfg.KeyFile)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parse key %s: %w", cfg.KeyFile, err)
		}
		signers = append(signers, signer)
	}
	sock := cfg.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	var agentSigners func() ([]ssh.Signer, error)
	closeAgent := func() {}
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			if len(signers) == 0 {
				return nil, nil, fmt.Errorf("connect to ssh-agent %s: %w", sock, err)
			}
		} else {
			agentSigners = agent.NewClient(conn).Signers
			closeAgent = func() { conn.Close() }
		}
	}
	if len(signers) == 0 && agentSigners == nil {
		return nil, nil, errors.New("no credentials: give a key file or run an ssh-agent (SSH_AUTH_SOCK)")
	}
	return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		all := append([]ssh.Signer(nil), signers...)
		if agentSigners != nil {
			more, err := agentSigners()
			if err != nil && len(all) == 0 {
				return nil, fmt.Errorf("list ssh-agent keys: %w", err)
			}
			all = append(all, more...)
		}
		return all, nil
	}), closeAgent, nil
}

// lockedBuffer is a bytes.Buffer that stdout and stderr may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// lockedWriter serialises writes from stdout and stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.buf }

// DialUnix reaches a unix socket of the node through the SSH connection
// (direct-streamlocal; sshd's AllowStreamLocalForwarding, on by default).
// The socket's permissions apply to the login user, not to sudo.
func (s *SSH) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	return s.client.DialContext(ctx, "unix", path)
}
