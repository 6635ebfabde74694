// Package nodeconf translates a node's Docker and kubelet configuration into
// the containerd configuration that replaces it: config.toml (schema version 2
// for containerd 1.6/1.7, version 3 for 2.x), certs.d/HOST/hosts.toml, a
// containerd.service.d proxy drop-in and the kubelet settings to change. It is
// pure: bytes in, bytes out; it never touches the disk.
package nodeconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// kind is the JSON type a daemon.json key must have.
type kind int

const (
	kString kind = iota
	kBool
	kInt
	kStrings   // list of strings
	kStringMap // object of strings
	kAny       // anything (only for keys that are never carried over)
	kRuntimes
	kProxies
	kFeatures
	kUlimits
)

func (k kind) String() string {
	return [...]string{"a string", "a boolean", "an integer", "a list of strings", "an object of strings", "any value", "an object of runtimes", "an object of proxies", "an object of booleans", "an object of ulimits"}[k]
}

// keySpec describes one daemon.json key and the dockerd flags that set it.
type keySpec struct {
	kind kind
	// flags are the dockerd flag names (without dashes) that set the key;
	// flags of list and map keys repeat.
	flags []string
}

// daemonKeys lists every key dockerd accepts in daemon.json on Linux
// (docker/cli docs/reference/dockerd.md, plus keys removed since v20.10 that
// old nodes still carry). dockerd refuses any other key, and so do we.
var daemonKeys = map[string]keySpec{
	"allow-direct-routing":             {kBool, []string{"allow-direct-routing"}},
	"allow-nondistributable-artifacts": {kStrings, []string{"allow-nondistributable-artifacts"}},
	"api-cors-header":                  {kString, []string{"api-cors-header"}},
	"authorization-plugins":            {kStrings, []string{"authorization-plugin"}},
	"bip":                              {kString, []string{"bip"}},
	"bip6":                             {kString, []string{"bip6"}},
	"bridge":                           {kString, []string{"bridge", "b"}},
	"bridge-accept-fwmark":             {kString, []string{"bridge-accept-fwmark"}},
	"builder":                          {kAny, nil},
	"cdi-spec-dirs":                    {kStrings, []string{"cdi-spec-dir"}},
	"cgroup-parent":                    {kString, []string{"cgroup-parent"}},
	"cluster-advertise":                {kString, []string{"cluster-advertise"}},
	"cluster-store":                    {kString, []string{"cluster-store"}},
	"cluster-store-opts":               {kStringMap, []string{"cluster-store-opt"}},
	"containerd":                       {kString, []string{"containerd"}},
	"containerd-namespace":             {kString, []string{"containerd-namespace"}},
	"containerd-plugins-namespace":     {kString, []string{"containerd-plugins-namespace"}},
	"cpu-rt-period":                    {kInt, []string{"cpu-rt-period"}},
	"cpu-rt-runtime":                   {kInt, []string{"cpu-rt-runtime"}},
	"cri-containerd":                   {kBool, []string{"cri-containerd"}},
	"data-root":                        {kString, []string{"data-root"}},
	"debug":                            {kBool, []string{"debug", "D"}},
	// disable-legacy-registry: dockerd accepted it up to 18.09 and refuses it
	// from 19.03 on (moby#37859 removed the v1 registry protocol); an old
	// node's daemon.json may still carry it, and that node's dockerd runs.
	"disable-legacy-registry": {kBool, []string{"disable-legacy-registry"}},
	"default-address-pools":   {kAny, []string{"default-address-pool"}},
	"default-cgroupns-mode":   {kString, []string{"default-cgroupns-mode"}},
	"default-gateway":         {kString, []string{"default-gateway"}},
	"default-gateway-v6":      {kString, []string{"default-gateway-v6"}},
	"default-ipc-mode":        {kString, []string{"default-ipc-mode"}},
	"default-network-opts":    {kAny, []string{"default-network-opt"}},
	"default-runtime":         {kString, []string{"default-runtime"}},
	"default-shm-size":        {kString, []string{"default-shm-size"}},
	"default-ulimits":         {kUlimits, []string{"default-ulimit"}},
	"dns":                     {kStrings, []string{"dns"}},
	// RHEL/CentOS 7's docker 1.13 (projectatomic/docker) took flags upstream
	// never had: extra search registries, blocked registries, signature
	// verification, and a confirmation before pushing to Docker Hub. The
	// stock docker.service of that package passes them through $ADD_REGISTRY,
	// $BLOCK_REGISTRY and $OPTIONS from /etc/sysconfig/docker.
	"add-registry":                 {kStrings, []string{"add-registry"}},
	"block-registry":               {kStrings, []string{"block-registry"}},
	"signature-verification":       {kBool, []string{"signature-verification"}},
	"confirm-def-push":             {kBool, []string{"confirm-def-push"}},
	"dns-opts":                     {kStrings, []string{"dns-opt"}},
	"dns-search":                   {kStrings, []string{"dns-search"}},
	"exec-opts":                    {kStrings, []string{"exec-opt"}},
	"exec-root":                    {kString, []string{"exec-root"}},
	"experimental":                 {kBool, []string{"experimental"}},
	"features":                     {kFeatures, []string{"feature"}},
	"firewall-backend":             {kString, []string{"firewall-backend"}},
	"fixed-cidr":                   {kString, []string{"fixed-cidr"}},
	"fixed-cidr-v6":                {kString, []string{"fixed-cidr-v6"}},
	"graph":                        {kString, []string{"graph", "g"}},
	"group":                        {kString, []string{"group", "G"}},
	"host-gateway-ip":              {kString, []string{"host-gateway-ip"}},
	"host-gateway-ips":             {kStrings, nil},
	"hosts":                        {kStrings, []string{"host", "H"}},
	"icc":                          {kBool, []string{"icc"}},
	"init":                         {kBool, []string{"init"}},
	"init-path":                    {kString, []string{"init-path"}},
	"insecure-registries":          {kStrings, []string{"insecure-registry"}},
	"ip":                           {kString, []string{"ip"}},
	"ip-forward":                   {kBool, []string{"ip-forward"}},
	"ip-forward-no-drop":           {kBool, []string{"ip-forward-no-drop"}},
	"ip-masq":                      {kBool, []string{"ip-masq"}},
	"ip6tables":                    {kBool, []string{"ip6tables"}},
	"iptables":                     {kBool, []string{"iptables"}},
	"ipv6":                         {kBool, []string{"ipv6"}},
	"labels":                       {kStrings, []string{"label"}},
	"live-restore":                 {kBool, []string{"live-restore"}},
	"log-driver":                   {kString, []string{"log-driver"}},
	"log-format":                   {kString, []string{"log-format"}},
	"log-level":                    {kString, []string{"log-level", "l"}},
	"log-opts":                     {kStringMap, []string{"log-opt"}},
	"max-concurrent-downloads":     {kInt, []string{"max-concurrent-downloads"}},
	"max-concurrent-uploads":       {kInt, []string{"max-concurrent-uploads"}},
	"max-download-attempts":        {kInt, []string{"max-download-attempts"}},
	"metrics-addr":                 {kString, []string{"metrics-addr"}},
	"mtu":                          {kInt, []string{"mtu"}},
	"network-control-plane-mtu":    {kInt, []string{"network-control-plane-mtu"}},
	"no-new-privileges":            {kBool, []string{"no-new-privileges"}},
	"node-generic-resources":       {kStrings, []string{"node-generic-resource"}},
	"oom-score-adjust":             {kInt, []string{"oom-score-adjust"}},
	"pidfile":                      {kString, []string{"pidfile", "p"}},
	"proxies":                      {kProxies, nil},
	"raw-logs":                     {kBool, []string{"raw-logs"}},
	"registry-mirrors":             {kStrings, []string{"registry-mirror"}},
	"rootless":                     {kBool, []string{"rootless"}},
	"runtimes":                     {kRuntimes, []string{"add-runtime"}},
	"seccomp-profile":              {kString, []string{"seccomp-profile"}},
	"selinux-enabled":              {kBool, []string{"selinux-enabled"}},
	"shutdown-timeout":             {kInt, []string{"shutdown-timeout"}},
	"storage-driver":               {kString, []string{"storage-driver", "s"}},
	"storage-opts":                 {kStrings, []string{"storage-opt"}},
	"swarm-default-advertise-addr": {kString, []string{"swarm-default-advertise-addr"}},
	"tls":                          {kBool, []string{"tls"}},
	"tlscacert":                    {kString, []string{"tlscacert"}},
	"tlscert":                      {kString, []string{"tlscert"}},
	"tlskey":                       {kString, []string{"tlskey"}},
	"tlsverify":                    {kBool, []string{"tlsverify"}},
	"userland-proxy":               {kBool, []string{"userland-proxy"}},
	"userland-proxy-path":          {kString, []string{"userland-proxy-path"}},
	"userns-remap":                 {kString, []string{"userns-remap"}},
}

// Runtime is one entry of daemon.json "runtimes".
type Runtime struct {
	Path        string         `json:"path,omitempty"`
	RuntimeArgs []string       `json:"runtimeArgs,omitempty"`
	RuntimeType string         `json:"runtimeType,omitempty"`
	Options     map[string]any `json:"options,omitempty"`
}

// Proxies is daemon.json "proxies".
type Proxies struct {
	HTTPProxy  string `json:"http-proxy,omitempty"`
	HTTPSProxy string `json:"https-proxy,omitempty"`
	NoProxy    string `json:"no-proxy,omitempty"`
}

// Ulimit is one entry of daemon.json "default-ulimits".
type Ulimit struct {
	Name string `json:"Name"`
	Soft int64  `json:"Soft"`
	Hard int64  `json:"Hard"`
}

// Setting is one Docker daemon setting and where it was set.
type Setting struct {
	Key string
	// Value holds a string, bool, int64, []string, map[string]string,
	// map[string]Runtime, Proxies, map[string]bool, map[string]Ulimit or any.
	Value any
	// Source is the file (daemon.json, a unit, an env file) that set it.
	Source string
}

// DaemonConfig is the Docker daemon's effective configuration, merged from
// daemon.json and the dockerd flags.
type DaemonConfig struct {
	Settings map[string]*Setting
	// Duplicates lists the keys (dotted paths: "log-opts.max-size") a
	// daemon.json sets more than once, with the file. dockerd decodes
	// daemon.json with Go's encoding/json, which keeps the last value of a
	// repeated key at any depth and reports nothing (moby
	// daemon/config.getConflictFreeConfiguration), so a node runs with such a
	// file: unshim takes the last value too and reports the repetition.
	Duplicates []Duplicate
}

// Duplicate is a daemon.json key set more than once.
type Duplicate struct {
	Key  string
	File string
}

// Get returns the setting for key, or nil.
func (c *DaemonConfig) Get(key string) *Setting {
	if c == nil || c.Settings == nil {
		return nil
	}
	return c.Settings[key]
}

// Keys returns the keys that are set, sorted.
func (c *DaemonConfig) Keys() []string {
	if c == nil {
		return nil
	}
	keys := make([]string, 0, len(c.Settings))
	for k := range c.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// String returns a string setting ("" when unset).
func (c *DaemonConfig) String(key string) string { return c.str(key) }

// Strings returns a list setting (nil when unset).
func (c *DaemonConfig) Strings(key string) []string { return c.strs(key) }

func (c *DaemonConfig) str(key string) string {
	if s := c.Get(key); s != nil {
		if v, ok := s.Value.(string); ok {
			return v
		}
	}
	return ""
}

func (c *DaemonConfig) strs(key string) []string {
	if s := c.Get(key); s != nil {
		if v, ok := s.Value.([]string); ok {
			return v
		}
	}
	return nil
}

func (c *DaemonConfig) boolean(key string) (bool, bool) {
	if s := c.Get(key); s != nil {
		if v, ok := s.Value.(bool); ok {
			return v, true
		}
	}
	return false, false
}

func (c *DaemonConfig) integer(key string) (int64, bool) {
	if s := c.Get(key); s != nil {
		if v, ok := s.Value.(int64); ok {
			return v, true
		}
	}
	return 0, false
}

// InputError is bad input: a file that does not parse, an unknown key, a
// value of the wrong type. It names the file and the key.
type InputError struct {
	File string
	Key  string
	Err  error
}

func (e *InputError) Error() string {
	switch {
	case e.Key != "" && e.File != "":
		return fmt.Sprintf("%s: key %q: %v", e.File, e.Key, e.Err)
	case e.File != "":
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("key %q: %v", e.Key, e.Err)
}

func (e *InputError) Unwrap() error { return e.Err }

// ParseDaemonJSON parses the daemon.json at path (used in errors) with
// dockerd's rules: an object of known keys, each of its type. Empty input is
// an empty configuration.
func ParseDaemonJSON(path string, data []byte) (*DaemonConfig, error) {
	cfg := &DaemonConfig{Settings: map[string]*Setting{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, nil
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, &InputError{File: path, Err: fmt.Errorf("invalid JSON: %w", jsonErr(err))}
	}
	if dec.More() {
		return nil, &InputError{File: path, Err: errors.New("invalid JSON: data after the top-level object")}
	}
	if raw == nil {
		return nil, &InputError{File: path, Err: errors.New("want a JSON object, got null")}
	}
	for _, k := range duplicateKeys(data) {
		cfg.Duplicates = append(cfg.Duplicates, Duplicate{Key: k, File: path})
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		spec, ok := daemonKeys[k]
		if !ok {
			return nil, &InputError{File: path, Key: k, Err: errors.New("unknown key: dockerd does not accept it")}
		}
		v, err := decodeValue(spec.kind, raw[k])
		var ee *entryError
		if errors.As(err, &ee) {
			return nil, &InputError{File: path, Key: k + "." + ee.entry, Err: ee.err}
		}
		if err != nil {
			return nil, &InputError{File: path, Key: k, Err: err}
		}
		cfg.Settings[k] = &Setting{Key: k, Value: v, Source: path}
	}
	return cfg, nil
}

// entryError is a bad value of one entry of an object-valued key.
type entryError struct {
	entry string
	err   error
}

func (e *entryError) Error() string { return e.entry + ": " + e.err.Error() }

func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%v (at byte %d)", se, se.Offset)
	}
	return err
}

// duplicateKeys returns the dotted paths of the object keys that data (valid
// JSON) sets more than once, at any depth, in the order met.
func duplicateKeys(data []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(data))
	var dups []string
	var walk func(prefix string) bool
	walk = func(prefix string) bool {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		switch t {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return false
				}
				k, _ := kt.(string)
				if seen[k] {
					dups = append(dups, prefix+k)
				}
				seen[k] = true
				if !walk(prefix + k + ".") {
					return false
				}
			}
			_, err = dec.Token()
			return err == nil
		case json.Delim('['):
			for dec.More() {
				if !walk(prefix) {
					return false
				}
			}
			_, err = dec.Token()
			return err == nil
		}
		return true
	}
	walk("")
	return dups
}

func decodeValue(k kind, raw json.RawMessage) (any, error) {
	strict := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return typeErr(k, raw, err)
		}
		return nil
	}
	switch k {
	case kString:
		var v string
		return v, strict(&v)
	case kBool:
		var v bool
		return v, strict(&v)
	case kInt:
		var v int64
		return v, strict(&v)
	case kStrings:
		var v []string
		if err := strict(&v); err != nil {
			return nil, err
		}
		if v == nil {
			v = []string{}
		}
		return v, nil
	case kStringMap:
		var v map[string]string
		if err := strict(&v); err != nil {
			// Name the entry: "log-opts.max-file", not just "log-opts".
			var entries map[string]json.RawMessage
			if json.Unmarshal(raw, &entries) == nil {
				for _, name := range sortedKeys(entries) {
					var s string
					if json.Unmarshal(entries[name], &s) != nil {
						return nil, &entryError{entry: name, err: fmt.Errorf("want a string, got %s", jsonKind(entries[name]))}
					}
				}
			}
			return nil, err
		}
		if v == nil {
			v = map[string]string{}
		}
		return v, nil
	case kRuntimes:
		var v map[string]Runtime
		if err := strict(&v); err != nil {
			return nil, err
		}
		for name, r := range v {
			if r.Path != "" && r.RuntimeType != "" {
				return nil, fmt.Errorf("runtime %q: path and runtimeType are mutually exclusive", name)
			}
		}
		return v, nil
	case kProxies:
		var v Proxies
		return v, strict(&v)
	case kFeatures:
		var v map[string]bool
		return v, strict(&v)
	case kUlimits:
		var v map[string]Ulimit
		return v, strict(&v)
	}
	var v any
	return v, json.Unmarshal(raw, &v)
}

func typeErr(k kind, raw json.RawMessage, err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return fmt.Errorf("want %s: field %q cannot be %s", k, ute.Field, ute.Value)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field") {
		return fmt.Errorf("want %s: %s", k, strings.TrimPrefix(err.Error(), "json: "))
	}
	return fmt.Errorf("want %s, got %s", k, jsonKind(raw))
}

func jsonKind(raw json.RawMessage) string {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if _, err := strconv.ParseFloat(string(s), 64); err == nil {
		return "a number " + string(s)
	}
	return "invalid JSON"
}
