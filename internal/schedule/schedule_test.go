package schedule

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestPinnedArchs(t *testing.T) {
	// Parsed from YAML so the table reads like pod specs.
	for _, tc := range []struct {
		name string
		spec string
		want []string
	}{
		{"none", `{}`, nil},
		{"nodeSelector", `{nodeSelector: {kubernetes.io/arch: arm64}}`, []string{"arm64"}},
		{"beta nodeSelector", `{nodeSelector: {beta.kubernetes.io/arch: amd64}}`, []string{"amd64"}},
		{"terms ORed", `{affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [
			{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [arm64]}]},
			{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}]}}}}`, []string{"amd64", "arm64"}},
		{"term without arch admits all", `{affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [
			{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [arm64]}]},
			{matchExpressions: [{key: pool, operator: In, values: [a]}]}]}}}}`, KnownArchs},
		{"NotIn", `{affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [
			{matchExpressions: [{key: kubernetes.io/arch, operator: NotIn, values: [amd64, arm, "386", ppc64le, riscv64, s390x]}]}]}}}}`, []string{"arm64"}},
		{"selector and affinity both hold", `{nodeSelector: {kubernetes.io/arch: amd64}, affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [
			{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [arm64]}]}]}}}}`, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := mustPodSpec(t, tc.spec)
			got, pinned := PinnedArchs(spec)
			if pinned != (tc.want != nil) {
				t.Errorf("pinned = %v", pinned)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func mustPodSpec(t *testing.T, s string) *corev1.PodSpec {
	t.Helper()
	var spec corev1.PodSpec
	if err := yaml.UnmarshalStrict([]byte(s), &spec); err != nil {
		t.Fatal(err)
	}
	return &spec
}

// TestArchUniverseBounded: a pin naming a huge list (attacker-written
// manifests can) is judged on a bounded set of probes, and the arch it
// names first still counts.
func TestArchUniverseBounded(t *testing.T) {
	values := []string{"arm64"}
	for i := range 200000 {
		values = append(values, fmt.Sprintf("junk-%d", i))
	}
	if n := len(ArchUniverse(KnownArchs, values...)); n > len(KnownArchs)+MaxNamedArchs {
		t.Fatalf("universe of %d probes", n)
	}
	spec := &corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: LabelArch, Operator: corev1.NodeSelectorOpIn, Values: values}},
		}}},
	}}}
	got, pinned := PinnedArchs(spec)
	if !pinned || len(got) == 0 || got[0] != "arm64" && !slices.Contains(got, "arm64") {
		t.Fatalf("PinnedArchs = %v, %v", got, pinned)
	}
}
