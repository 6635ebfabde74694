package report

import (
	"github.com/unshim/unshim/pkg/check"
)

// The subset of SARIF 2.1.0 that unshim writes.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations,omitempty"`
	Results     []sarifResult     `json:"results"`
}

// sarifInvocation carries the objects that were read but not checked, as
// tool execution notifications (SARIF 2.1.0 §3.20.21).
type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name,omitempty"`
	ShortDescription     sarifText         `json:"shortDescription"`
	Help                 sarifText         `json:"help"`
	DefaultConfiguration sarifConfig       `json:"defaultConfiguration"`
	Properties           map[string]string `json:"properties,omitempty"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations,omitempty"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

// sarifLevel maps a severity to SARIF's error, warning or note.
func sarifLevel(s check.Severity) string {
	switch {
	case s >= check.SeverityHigh:
		return "error"
	case s == check.SeverityMedium:
		return "warning"
	default:
		return "note"
	}
}

// newSARIFLog returns the log with its tool and rules, and no results yet.
func newSARIFLog(rules []check.RuleMeta) sarifLog {
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "unshim", Rules: []sarifRule{}}}, Results: []sarifResult{}}
	for _, r := range rules {
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: r.ID, Name: r.Title, ShortDescription: sarifText{r.Title}, Help: sarifText{r.Remedy},
			DefaultConfiguration: sarifConfig{Level: sarifLevel(r.Severity)},
			Properties:           map[string]string{"severity": r.Severity.String()},
		})
	}
	return sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
}

// sarifNotificationOf is the notification of an object that was not checked.
func sarifNotificationOf(s check.Skipped) sarifNotification {
	n := sarifNotification{Level: "warning", Message: sarifText{"skipped " + s.Object.String() + ": " + s.Reason}}
	if s.File != "" {
		loc := sarifLocation{PhysicalLocation: &sarifPhysical{ArtifactLocation: sarifArtifact{URI: s.File}}}
		if s.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: s.Line}
		}
		n.Locations = []sarifLocation{loc}
	}
	return n
}

// sarifResultOf is the result of one finding.
func sarifResultOf(f check.Finding) sarifResult {
	loc := sarifLocation{LogicalLocations: []sarifLogical{{FullyQualifiedName: f.Object.String(), Kind: "resource"}}}
	if f.File != "" {
		loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: f.File}}
		if f.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
		}
	}
	props := map[string]any{"severity": f.Severity.String(), "remedy": f.Remedy}
	if f.Container != "" {
		props["container"] = f.Container
	}
	if f.Evidence != "" {
		props["evidence"] = f.Evidence
	}
	if f.Pods > 0 {
		props["pods"] = f.Pods
	}
	return sarifResult{
		RuleID: f.Rule, Level: sarifLevel(f.Severity),
		Message:   sarifText{f.Object.String() + ": " + f.Message},
		Locations: []sarifLocation{loc}, Properties: props,
	}
}
