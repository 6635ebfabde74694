package nodeplan

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/unshim/unshim/pkg/nodeconf"
)

// cri-dockerd's files, where Mirantis's packages put them
// (github.com/Mirantis/cri-dockerd packaging/systemd: cri-docker.service
// runs `cri-dockerd --container-runtime-endpoint fd://` on the socket that
// cri-docker.socket listens on, %t/cri-dockerd.sock).
const (
	CRIDockerdBinary      = "/usr/bin/cri-dockerd"
	CRIDockerdService     = "cri-docker.service"
	CRIDockerdSocket      = "cri-docker.socket"
	CRIDockerdPackageUnit = "/lib/systemd/system/" + CRIDockerdService
	// CRIDockerdServiceFile and CRIDockerdSocketFile are where the switch
	// writes the units when the package brought none (a bare binary).
	CRIDockerdServiceFile = "/etc/systemd/system/" + CRIDockerdService
	CRIDockerdSocketFile  = "/etc/systemd/system/" + CRIDockerdSocket
	// CRIDockerdDropIn carries the flags the switch hands cri-dockerd.
	CRIDockerdDropIn = "/etc/systemd/system/" + CRIDockerdService + ".d/10-unshim.conf"
)

// CRIDockerdServiceUnit is a cri-docker.service laid out as Mirantis's
// packages lay it out: Type=notify, the socket unit required, restarted
// always, its own cgroup delegated, only the main process killed on stop
// (containers belong to Docker).
func CRIDockerdServiceUnit(binary string) []byte {
	return []byte(`[Unit]
Description=CRI Interface for Docker Application Container Engine
After=network-online.target docker.service
Wants=network-online.target
Requires=` + CRIDockerdSocket + `

[Service]
Type=notify
ExecStart=` + binary + ` --container-runtime-endpoint fd://
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutSec=0
Restart=always
RestartSec=2
StartLimitBurst=3
StartLimitInterval=60s
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process

[Install]
WantedBy=multi-user.target
`)
}

// CRIDockerdSocketUnit is the cri-docker.socket of Mirantis's packages: the
// CRI socket at /run/cri-dockerd.sock (/var/run is /run), for root and the
// docker group.
func CRIDockerdSocketUnit() []byte {
	return []byte(`[Unit]
Description=CRI Docker Socket for the API
PartOf=` + CRIDockerdService + `

[Socket]
ListenStream=%t/cri-dockerd.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
`)
}

// criDockerdCarried are the kubelet's dockershim flags that cri-dockerd
// takes under the same name: once the kubelet no longer runs dockershim,
// they must be cri-dockerd's, or its defaults (another pause image, CNI
// directories) apply.
var criDockerdCarried = []string{
	"pod-infra-container-image", "network-plugin", "cni-bin-dir", "cni-conf-dir", "cni-cache-dir",
	"network-plugin-mtu", "docker-endpoint", "image-pull-progress-deadline", "runtime-request-timeout",
}

// CRIDockerdFlags are the flags cri-dockerd takes from the kubelet's
// (--name=value, in criDockerdCarried's order).
func CRIDockerdFlags(kubelet []nodeconf.KubeletFlag) []string {
	have := map[string]string{}
	for _, f := range kubelet {
		if f.HasValue {
			have[f.Name] = f.Value
		}
	}
	var out []string
	for _, name := range criDockerdCarried {
		if v, ok := have[name]; ok && v != "" {
			out = append(out, "--"+name+"="+v)
		}
	}
	return out
}

// CRIDockerdDropInFile is the drop-in that starts cri-dockerd (binary) on
// its socket with flags.
func CRIDockerdDropInFile(binary string, flags []string) []byte {
	var b strings.Builder
	b.WriteString("# Written by unshim: the flags cri-dockerd takes over from the kubelet's dockershim.\n[Service]\nExecStart=\n")
	fmt.Fprintf(&b, "ExecStart=%s --container-runtime-endpoint fd://", binary)
	for _, f := range flags {
		b.WriteString(" " + systemdEscape(f))
	}
	b.WriteString("\n")
	return []byte(b.String())
}

// systemdEscape quotes an argument for a unit's ExecStart: specifiers (%)
// and variables ($) doubled, and double quotes around anything with spaces,
// quotes or backslashes.
func systemdEscape(arg string) string {
	arg = strings.NewReplacer("%", "%%", "$", "$$").Replace(arg)
	if !strings.ContainsAny(arg, " \t\"'\\;") {
		return arg
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(arg) + `"`
}

// Kinds of cri-dockerd source an operator names (--cri-dockerd-package).
const (
	SourceDeb    = "deb"
	SourceRPM    = "rpm"
	SourceBinary = "binary"
)

// CRIDockerdSourceKind tells a .deb, an .rpm and a bare cri-dockerd binary
// (an ELF executable) apart by their first bytes; name is used in errors.
func CRIDockerdSourceKind(name string, head []byte) (string, error) {
	switch {
	case bytes.HasPrefix(head, []byte("!<arch>\ndebian-binary")):
		return SourceDeb, nil
	case bytes.HasPrefix(head, []byte{0xed, 0xab, 0xee, 0xdb}):
		return SourceRPM, nil
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return SourceBinary, nil
	}
	return "", fmt.Errorf("%s is neither a .deb, an .rpm nor an executable (ELF) cri-dockerd", name)
}
