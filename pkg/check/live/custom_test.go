package live

import (
	"testing"

	"sigs.k8s.io/yaml"
)

// TestMayHoldContainers: which CRD schemas make check -A list their objects.
func TestMayHoldContainers(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   bool
	}{
		{"no schema", ``, true},
		{"whole object open (Tekton)", `{type: object, x-kubernetes-preserve-unknown-fields: true}`, true},
		{"spec open (Argo's minimal CRDs)", `{type: object, properties: {metadata: {type: object}, spec: {type: object, x-kubernetes-preserve-unknown-fields: true}}}`, true},
		{"image beside a command", `{properties: {spec: {properties: {jobs: {type: array, items: {properties: {run: {properties: {image: {type: string}, command: {type: array}}}}}}}}}}`, true},
		{"image in a list of steps", `{properties: {spec: {properties: {steps: {type: array, items: {properties: {image: {type: string}}}}}}}}`, true},
		{"image in a map of containers", `{properties: {spec: {properties: {containers: {type: object, additionalProperties: {properties: {image: {type: string}}}}}}}}`, true},
		{"image alone", `{properties: {spec: {properties: {image: {type: string}, size: {type: integer}}}}}`, false},
		{"no image", `{properties: {spec: {properties: {size: {type: integer}, config: {type: object, x-kubernetes-preserve-unknown-fields: true}}}}}`, false},
		{"open but with properties named", `{type: object, x-kubernetes-preserve-unknown-fields: true, properties: {spec: {properties: {size: {type: integer}}}}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sch map[string]any
			if tt.schema != "" {
				if err := yaml.Unmarshal([]byte(tt.schema), &sch); err != nil {
					t.Fatal(err)
				}
			}
			if got := mayHoldContainers(sch); got != tt.want {
				t.Errorf("mayHoldContainers = %v, want %v", got, tt.want)
			}
		})
	}
}
