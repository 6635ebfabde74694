package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The API's names.
const (
	Group    = "unshim.io"
	Version  = "v1alpha1"
	Kind     = "RuntimeMigration"
	Resource = "runtimemigrations"
	ListKind = "RuntimeMigrationList"
)

// GroupVersion is unshim.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// GroupVersionResource is what the dynamic client addresses.
var GroupVersionResource = GroupVersion.WithResource(Resource)

// GroupVersionKind is the kind of a RuntimeMigration.
var GroupVersionKind = GroupVersion.WithKind(Kind)

// Target runtimes a rollout can switch nodes to (pkg/nodeplan's targets).
const (
	TargetContainerd = "containerd"
	TargetCRIDockerd = "cri-dockerd"
)

// Default label keys of the per-zone and per-pool limits.
const (
	DefaultZoneLabel = "topology.kubernetes.io/zone"
	DefaultPoolLabel = "unshim.io/pool"
)

// RuntimeMigration takes a set of nodes off Docker, wave by wave. The spec
// is written by people (`unshim rollout create|pause|resume|abort`, kubectl);
// the status only by the rollout driver.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=rtm,categories=unshim
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRuntime`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Done",type=string,JSONPath=`.status.progress`,description="nodes done / nodes selected"
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.counts.failed`
// +kubebuilder:printcolumn:name="Blocked",type=integer,JSONPath=`.status.counts.blocked`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RuntimeMigration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RuntimeMigrationSpec   `json:"spec"`
	Status RuntimeMigrationStatus `json:"status,omitempty"`
}

// RuntimeMigrationList is a list of RuntimeMigrations.
//
// +kubebuilder:object:root=true
type RuntimeMigrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RuntimeMigration `json:"items"`
}

// RuntimeMigrationSpec says which nodes to switch, to what, and how fast.
type RuntimeMigrationSpec struct {
	// Nodes selects the nodes to switch. With neither selector nor names,
	// every node that still runs Docker is selected.
	// +optional
	Nodes NodeSelection `json:"nodes,omitempty"`
	// TargetRuntime is what the nodes are switched to.
	// +kubebuilder:validation:Enum=containerd;cri-dockerd
	// +kubebuilder:default=containerd
	TargetRuntime string `json:"targetRuntime"`
	// MaxUnavailable is how many selected nodes may be switching at once
	// across the cluster: a count, or a percent of the selected nodes
	// (rounded down, at least 1). Default 1.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:Pattern=`^([1-9][0-9]?|100)%$`
	// +kubebuilder:validation:XValidation:rule="type(self) == string || self >= 1",message="a count must be at least 1"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// Zone limits how many nodes of one zone switch at once.
	// +optional
	Zone *TopologyLimit `json:"zone,omitempty"`
	// Pool limits how many nodes of one node pool switch at once.
	// +optional
	Pool *TopologyLimit `json:"pool,omitempty"`
	// Canary is the first wave, switched alone before any other.
	// +optional
	Canary Canary `json:"canary,omitempty"`
	// FailureBudget is how many nodes may fail before the rollout pauses.
	// +optional
	FailureBudget FailureBudget `json:"failureBudget,omitempty"`
	// Windows are when waves may start; none means any time. A wave under
	// way when a window closes finishes; the next waits for a window.
	// +optional
	// +listType=atomic
	Windows []Window `json:"windows,omitempty"`
	// Gates are checked after each wave (after the soak time) before the
	// next starts; a gate that fails pauses the rollout with the reason.
	// +optional
	// +listType=map
	// +listMapKey=name
	Gates []Gate `json:"gates,omitempty"`
	// SoakTime is how long to wait after a wave, with every node healthy,
	// before the gates and the next wave.
	// +optional
	SoakTime *metav1.Duration `json:"soakTime,omitempty"`
	// Transport is how the driver reaches each node to run the switch.
	// +optional
	Transport Transport `json:"transport,omitempty"`
	// DrainTimeout bounds each node's drain; a drain a PDB still blocks at
	// the timeout leaves the node blocked, not failed.
	// +optional
	DrainTimeout *metav1.Duration `json:"drainTimeout,omitempty"`
	// VerifyTimeout bounds each node's verify after the switch.
	// +optional
	VerifyTimeout *metav1.Duration `json:"verifyTimeout,omitempty"`
	// AllowLastDockerNodes lets the rollout switch the last Docker nodes
	// that workloads pinned to Docker (`unshim pin`) need.
	// +optional
	AllowLastDockerNodes bool `json:"allowLastDockerNodes,omitempty"`
	// Paused stops the driver from starting nodes; nodes under way finish.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// Abort ends the rollout for good: the driver starts no more nodes,
	// lets the nodes under way finish (or roll back), and sets phase Aborted.
	// +optional
	Abort bool `json:"abort,omitempty"`
}

// NodeSelection selects nodes by label, by name, or both (a node must match
// both when both are given).
type NodeSelection struct {
	// Selector matches node labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Names lists nodes by name.
	// +optional
	// +listType=set
	Names []string `json:"names,omitempty"`
}

// TopologyLimit is a maxUnavailable per value of a node label.
type TopologyLimit struct {
	// LabelKey is the node label whose values are the zones or pools.
	// Defaults: topology.kubernetes.io/zone for zones, unshim.io/pool for pools.
	// +optional
	LabelKey string `json:"labelKey,omitempty"`
	// MaxUnavailable per zone or pool: a count, or a percent of that zone's
	// or pool's selected nodes (rounded down, at least 1).
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:Pattern=`^([1-9][0-9]?|100)%$`
	// +kubebuilder:validation:XValidation:rule="type(self) == string || self >= 1",message="a count must be at least 1"
	MaxUnavailable intstr.IntOrString `json:"maxUnavailable"`
}

// Canary modes.
const (
	CanaryNone    = "None"
	CanaryPerPool = "PerPool"
	CanaryCount   = "Count"
)

// Canary is the rollout's first wave. A canary that fails stops the rollout.
type Canary struct {
	// Mode: None; PerPool, the first node of each pool; or Count, the first
	// Count nodes. Default PerPool.
	// +kubebuilder:validation:Enum=None;PerPool;Count
	// +optional
	Mode string `json:"mode,omitempty"`
	// Count is the number of canary nodes with mode Count.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Count int32 `json:"count,omitempty"`
}

// FailureBudget is how many failed nodes pause the rollout: more than
// PerWave in one wave, or more than Total in all.
type FailureBudget struct {
	// PerWave failed nodes allowed in one wave. Default 0.
	// +kubebuilder:validation:Minimum=0
	// +optional
	PerWave int32 `json:"perWave,omitempty"`
	// Total failed nodes allowed in the whole rollout. Default 0.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Total int32 `json:"total,omitempty"`
}

// Window is a time of the week when waves may start.
type Window struct {
	// Days the window opens on; none means every day.
	// +optional
	// +listType=set
	Days []Weekday `json:"days,omitempty"`
	// Start is the time of day the window opens, HH:MM.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	Start string `json:"start"`
	// End is the time of day the window closes, HH:MM; before Start means
	// the next day.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	End string `json:"end"`
	// TimeZone is an IANA zone name such as Europe/Berlin. Default UTC.
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
}

// Weekday is a day of the week, as Go's time package spells it.
// +kubebuilder:validation:Enum=Monday;Tuesday;Wednesday;Thursday;Friday;Saturday;Sunday
type Weekday string

// Gate types.
const (
	GateCommand    = "Command"
	GateHTTP       = "HTTP"
	GatePrometheus = "Prometheus"
)

// Gate is a health check run after each wave. It passes when it succeeds
// Checks times in a row, Interval apart.
type Gate struct {
	// Name names the gate in status and events.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Type: Command, HTTP or Prometheus.
	// +kubebuilder:validation:Enum=Command;HTTP;Prometheus
	Type string `json:"type"`
	// Command is run by the driver (argv, no shell); exit 0 passes.
	// +optional
	Command []string `json:"command,omitempty"`
	// URL is fetched with GET for type HTTP (a 2xx passes) or is the
	// Prometheus server for type Prometheus.
	// +optional
	URL string `json:"url,omitempty"`
	// Query is a PromQL query for type Prometheus; it passes when it
	// returns at least one sample and every sample is non-zero.
	// +optional
	Query string `json:"query,omitempty"`
	// Checks is how many times in a row the gate must pass. Default 1.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Checks int32 `json:"checks,omitempty"`
	// Interval between checks. Default 10s.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one check. Default 30s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// Transport types: the node steps run in an agent pod on the node, or over SSH.
const (
	TransportPod = "pod"
	TransportSSH = "ssh"
)

// Transport is how the driver reaches a node.
type Transport struct {
	// Via: pod (an agent pod hands the run to a systemd unit on the node) or
	// ssh. Default pod.
	// +kubebuilder:validation:Enum=pod;ssh
	// +optional
	Via string `json:"via,omitempty"`
	// SSH settings with via ssh.
	// +optional
	SSH *SSHTransport `json:"ssh,omitempty"`
}

// SSHTransport says how to log in to nodes over SSH. The host is each
// node's InternalIP and Port, unless the node's annotation
// SSHAddressAnnotation says otherwise.
type SSHTransport struct {
	// User to log in as; other than root, commands run through sudo -n.
	// Default root.
	// +optional
	User string `json:"user,omitempty"`
	// Port of sshd. Default 22.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
	// KeySecret holds the private key.
	KeySecret SecretKeyRef `json:"keySecret"`
	// KnownHostsSecret holds the known_hosts the nodes' host keys are
	// checked against.
	KnownHostsSecret SecretKeyRef `json:"knownHostsSecret"`
}

// SSHAddressAnnotation on a node tells a rollout with spec.transport.via
// ssh where to reach it instead of its InternalIP: host or host:port (the
// port defaults to spec.transport.ssh.port), for a node whose sshd is
// reached through another address or port (NAT, a port of its own). The
// node's host key is checked against known_hosts under that address
// ([host]:port when the port is not 22), as for any other.
const SSHAddressAnnotation = "unshim.io/ssh-address"

// SecretKeyRef names one key of a Secret.
type SecretKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// Rollout phases (status.phase).
const (
	PhasePending   = "Pending"
	PhaseRunning   = "Running"
	PhasePaused    = "Paused"
	PhaseSucceeded = "Succeeded"
	// PhaseCompleted: every node ended and none failed, but some were
	// blocked (a PDB kept their drain from finishing) and still run Docker;
	// the Blocked condition names them.
	PhaseCompleted = "Completed"
	PhaseFailed    = "Failed"
	PhaseAborted   = "Aborted"
)

// Node states (status.nodes[].state).
const (
	NodePending    = "Pending"
	NodeSwitching  = "Switching"
	NodeDone       = "Done"
	NodeFailed     = "Failed"
	NodeBlocked    = "Blocked"
	NodeRolledBack = "RolledBack"
	// NodeSkipped is a planned node the driver did not switch (a Windows
	// node: the switch has only dry-run plans for Windows); its cause says
	// why. It does not count against the failure budget.
	NodeSkipped = "Skipped"
	// NodeUndone is a node the rollout switched and `unshim rollout undo`
	// switched back.
	NodeUndone = "Undone"
)

// Wave kinds, in the order they run.
const (
	WaveCanary       = "Canary"
	WaveWorkers      = "Workers"
	WaveWindows      = "Windows"
	WaveControlPlane = "ControlPlane"
)

// Condition types.
const (
	// ConditionProgressing is True while the driver is switching nodes.
	ConditionProgressing = "Progressing"
	// ConditionPaused is True when the rollout is paused, with the reason
	// (spec.paused, a gate, the failure budget, a failed canary, outside a window).
	ConditionPaused = "Paused"
	// ConditionComplete is True when every node has ended.
	ConditionComplete = "Complete"
	// ConditionBlocked is True when the rollout ended with blocked nodes,
	// named in its message.
	ConditionBlocked = "Blocked"
	// ConditionUndone is set by `unshim rollout undo`: True when every node
	// the rollout switched was switched back.
	ConditionUndone = "Undone"
)

// RuntimeMigrationStatus is what the driver has done. Per-node detail of a
// switch stays in the node's annotations and journal.
type RuntimeMigrationStatus struct {
	// ObservedGeneration is the spec generation the driver last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase of the rollout.
	// +kubebuilder:validation:Enum=Pending;Running;Paused;Succeeded;Completed;Failed;Aborted
	// +optional
	Phase string `json:"phase,omitempty"`
	// Message says why the rollout is in its phase (why it paused).
	// +optional
	Message string `json:"message,omitempty"`
	// Driver names the driver that holds the rollout's Lease.
	// +optional
	Driver string `json:"driver,omitempty"`
	// Waves in the order they run.
	// +optional
	// +listType=atomic
	Waves []WaveStatus `json:"waves,omitempty"`
	// Nodes and Skipped are atomic lists, not list-maps keyed by name: only
	// the driver writes the status, and a list-map kept an entry of
	// managedFields per node, as large as the list itself, that every status
	// write and read of a rollout of thousands of nodes carried and the
	// apiserver worked out again.

	// Nodes is every selected node's state, in wave order.
	// +optional
	// +listType=atomic
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// Skipped are nodes the selection matched that are not switched, with why
	// (already on the target runtime).
	// +optional
	// +listType=atomic
	Skipped []SkippedNode `json:"skipped,omitempty"`
	// Counts of nodes by state.
	// +optional
	Counts Counts `json:"counts,omitempty"`
	// Progress is "done/total", for the printer column.
	// +optional
	Progress string `json:"progress,omitempty"`
	// AcceptedFailures is how many Failed and RolledBack nodes there were
	// when an operator resumed a rollout the failure budget paused: the
	// total budget pauses it again only once more nodes have failed.
	// +kubebuilder:validation:Minimum=0
	// +optional
	AcceptedFailures int32 `json:"acceptedFailures,omitempty"`
	// Conditions: Progressing, Paused, Complete, Blocked, Undone.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StartTime is when the first wave started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the last node ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// WaveStatus is one wave.
type WaveStatus struct {
	// Index counts waves from 0.
	// +kubebuilder:validation:Minimum=0
	Index int32 `json:"index"`
	// Kind: Canary, Workers, Windows or ControlPlane.
	// +kubebuilder:validation:Enum=Canary;Workers;Windows;ControlPlane
	Kind string `json:"kind"`
	// Nodes in the wave.
	// +listType=atomic
	Nodes []string `json:"nodes"`
	// StartTime is when the wave's nodes were cordoned.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when its last node ended and its gates passed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// NodeStatus is one node's state in the rollout.
type NodeStatus struct {
	// Name of the node.
	Name string `json:"name"`
	// Wave index the node is in.
	// +kubebuilder:validation:Minimum=0
	Wave int32 `json:"wave"`
	// State: Pending, Switching, Done, Failed, Blocked, RolledBack, Skipped
	// or Undone.
	// +kubebuilder:validation:Enum=Pending;Switching;Done;Failed;Blocked;RolledBack;Skipped;Undone
	State string `json:"state"`
	// FromRuntime is what the node ran when it was planned (docker, cri-dockerd).
	// +optional
	FromRuntime string `json:"fromRuntime,omitempty"`
	// Phase is the switch phase under way (from the node's annotation).
	// +optional
	Phase string `json:"phase,omitempty"`
	// FailedPhase is the switch phase a Failed, RolledBack or Blocked node
	// stopped in.
	// +optional
	FailedPhase string `json:"failedPhase,omitempty"`
	// Cause says why a node failed, was blocked, was rolled back or skipped.
	// +optional
	Cause string `json:"cause,omitempty"`
	// Blocking names what kept a blocked node's drain from finishing.
	// +optional
	Blocking *Blocking `json:"blocking,omitempty"`
	// StartTime is when the switch started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when it ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// UndoStartTime and UndoCompletionTime are when `unshim rollout undo`
	// switched the node back.
	// +optional
	UndoStartTime *metav1.Time `json:"undoStartTime,omitempty"`
	// +optional
	UndoCompletionTime *metav1.Time `json:"undoCompletionTime,omitempty"`
}

// Blocking is the PDB and pods a drain could not evict.
type Blocking struct {
	// PodDisruptionBudget is namespace/name of the PDB that refused eviction.
	// +optional
	PodDisruptionBudget string `json:"podDisruptionBudget,omitempty"`
	// Pods are namespace/name of the pods left on the node.
	// +optional
	// +listType=atomic
	Pods []string `json:"pods,omitempty"`
}

// SkippedNode is a selected node that is not switched.
type SkippedNode struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Counts are the nodes of a rollout by state.
type Counts struct {
	Total      int32 `json:"total"`
	Pending    int32 `json:"pending"`
	Switching  int32 `json:"switching"`
	Done       int32 `json:"done"`
	Failed     int32 `json:"failed"`
	Blocked    int32 `json:"blocked"`
	RolledBack int32 `json:"rolledBack"`
	// Skipped counts status.skipped and the planned nodes not switched.
	Skipped int32 `json:"skipped"`
	// +optional
	Undone int32 `json:"undone,omitempty"`
}
