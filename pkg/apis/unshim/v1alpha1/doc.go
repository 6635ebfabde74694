// Package v1alpha1 owns the RuntimeMigration API (group unshim.io, version
// v1alpha1): a cluster-scoped object whose spec says which nodes to take off
// Docker and how fast, and whose status is where the rollout driver records
// the waves and each node's state. The CRD in deploy/crd is generated from
// these types (`make crd`); a test keeps the two in step.
//
// +kubebuilder:object:generate=true
// +groupName=unshim.io
package v1alpha1
