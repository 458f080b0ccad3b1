package apply

import (
	"fmt"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// schedulingFields are the pod spec fields an affinity patch touches, and
// the ones a reader needs next to them to judge it.
var schedulingFields = []string{"nodeSelector", "affinity", "tolerations"}

// Scheduling returns the scheduling fields of the pod spec at podSpecPath
// (a JSON pointer such as /spec/template/spec) as YAML.
func Scheduling(obj *unstructured.Unstructured, podSpecPath string) (string, error) {
	path := pointerFields(podSpecPath)
	spec, _, err := unstructured.NestedMap(obj.Object, path...)
	if err != nil {
		return "", fmt.Errorf("reading %s of %s %s: %w", podSpecPath, obj.GetKind(), obj.GetName(), err)
	}
	sub := map[string]any{}
	for _, f := range schedulingFields {
		if v, ok := spec[f]; ok {
			sub[f] = v
		}
	}
	if len(sub) == 0 {
		return "", nil
	}
	b, err := yaml.Marshal(sub)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Diff is a unified diff of the scheduling fields (nodeSelector, affinity,
// tolerations) of the pod spec at podSpecPath, before and after; "" when
// they are equal.
func Diff(before, after *unstructured.Unstructured, podSpecPath string) (string, error) {
	a, err := Scheduling(before, podSpecPath)
	if err != nil {
		return "", err
	}
	b, err := Scheduling(after, podSpecPath)
	if err != nil {
		return "", err
	}
	if a == b {
		return "", nil
	}
	label := strings.ToLower(before.GetKind()) + "/" + before.GetName() + " " + podSpecPath
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines(a), B: lines(b),
		FromFile: label + " (live)", ToFile: label + " (patched, server dry run)",
		Context: 3,
	})
}

// pointerFields splits a JSON pointer into field names (RFC 6901 escapes
// undone).
func pointerFields(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return difflib.SplitLines(s)
}
