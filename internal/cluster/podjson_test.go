package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestDecodePodSameAsUnmarshal reads a run of pods (several of one owner,
// as a dump lists them) with decodePod and with json.Unmarshal into
// corev1.Pod, and wants the same pods and the same errors; pods of one
// owner with the same containers share them.
func TestDecodePodSameAsUnmarshal(t *testing.T) {
	pod := func(name, owner, spec string) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"` + name + `","namespace":"ns","labels":{"app":"a"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"` + owner + `","controller":true}]},"spec":` + spec + `,"status":{"phase":"Running"}}`
	}
	main := `"containers":[{"name":"app","image":"r/app:1","command":["/app"],"env":[{"name":"A","value":"1"}],"ports":[{"containerPort":80}]}]`
	init := `"initContainers":[{"name":"init","image":"r/init:1","restartPolicy":"Always"}]`
	conds := `[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/6 nodes"},{"type":"Initialized","status":"True"},{"type":"Ready","status":"Unknown"}]`
	pods := []string{
		pod("p1", "u1", `{"nodeName":"n1",`+init+`,`+main+`}`),
		pod("p2", "u1", `{"nodeName":"n2",`+init+`,`+main+`}`),
		pod("p3", "u1", `{`+main+`,"nodeName":"n3"}`),
		pod("p4", "u1", `{"containers":[{"name":"app","image":"r/app:2"}]}`),
		pod("p5", "u2", `{`+main+`}`),
		pod("p6", "", `{`+main+`}`),
		pod("p7", "u1", `{"containers":null}`),
		pod("p8", "u1", `{"containers":[]}`),
		pod("p9", "u1", `{`+main+`,"Containers":[{"name":"other"}]}`),
		pod("p10", "u1", `{"containers":[{"name":"app","image":"r/app:1","ports":[{"containerPort":"eighty"}]}]}`),
		pod("p11", "u1", `{`+main+`}`) + ``,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p12"},"spec":{"containers":[{"name":"a"}]},"spec":{"nodeName":"n"}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p13"},"status":{"containerStatuses":[{"restartCount":"seven"}]},"spec":{` + main + `}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p15","labels":{"app":"b"},"ownerReferences":[{"kind":"ReplicaSet","name":"rs","uid":"u1","controller":true}]}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p16","labels":{"app":"b"},"ownerReferences":[{"kind":"ReplicaSet","name":"rs","uid":"u1","controller":true}]},"metadata":{"labels":{"x":"y"}}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p17","labels":{"app":5},"ownerReferences":[{"kind":"ReplicaSet","name":"rs","uid":"u1","controller":true}]}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p18","labels":null,"ownerReferences":[{"kind":"ReplicaSet","name":"rs","uid":"u1","controller":true}]}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p14","ownerReferences":[{"kind":"Node","name":"n","uid":"n"}]},"spec":{` + init + `}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p19","managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-12-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{}}}}]},"spec":{` + main + `}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p20","managedFields":[{"manager":"x"}],"labels":{"app":"a"}},"spec":{"containers":[{"name":"app","image":"r/app:1","ports":[{"containerPort":"eighty"}]}]}}`,
		// The token volume the API server adds, named at random per pod:
		// p22 shares p21's containers, and neither keeps the volume or the
		// mounts; p23, which mounts another volume, does not share; p24's
		// controller has no UID; p25 gives its volumes twice; p26, a pod of
		// its own, keeps them.
		pod("p21", "u3", tokenSpec("kube-api-access-2pc8v", "kube-api-access-2pc8v")),
		pod("p22", "u3", tokenSpec("kube-api-access-hfd9m", "kube-api-access-hfd9m")),
		pod("p23", "u3", tokenSpec("kube-api-access-hfd9m", "data-volume-x")),
		pod("p24", "", tokenSpec("kube-api-access-q7w2x", "kube-api-access-q7w2x")),
		pod("p25", "u3", `{"volumes":[{"name":"a","emptyDir":{}}],`+main+`,"volumes":[{"name":"b","emptyDir":{}}]}`),
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p26","namespace":"ns"},"spec":` + tokenSpec("kube-api-access-q7w2x", "kube-api-access-q7w2x") + `,"status":{"conditions":` + conds + `}}`,
		// A workload's pod keeps only its conditions that are not True.
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p27","ownerReferences":[{"kind":"ReplicaSet","name":"rs","uid":"u4","controller":true}]},"status":{"phase":"Pending","conditions":` + conds + `}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p28","ownerReferences":[{"kind":"ReplicaSet","name":"rs","uid":"u4","controller":true}]},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}`,
	}
	c := newCollector()
	var shared, conditions int
	var prev *corev1.Pod
	for i, js := range pods {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want := &corev1.Pod{}
			wantErr := unmarshal([]byte(js), "Pod", want)
			want.ManagedFields = nil // not read (see objectMetaWire)
			if controllerRef(want.OwnerReferences) != nil {
				// not kept for a workload's pods (see dropMounts)
				want.Spec.Volumes = nil
				for _, cs := range [][]corev1.Container{want.Spec.InitContainers, want.Spec.Containers} {
					for i := range cs {
						cs[i].VolumeMounts = nil
					}
				}
				for i := range want.Status.ContainerStatuses {
					want.Status.ContainerStatuses[i].VolumeMounts = nil
				}
				want.Status.Conditions = slices.DeleteFunc(want.Status.Conditions, func(c corev1.PodCondition) bool { return c.Status == corev1.ConditionTrue })
				if len(want.Status.Conditions) == 0 {
					want.Status.Conditions = nil
				}
			} else if wantErr == nil && strings.Contains(js, "kube-api-access") && (len(want.Spec.Volumes) == 0 || len(want.Spec.Containers[0].VolumeMounts) == 0) {
				t.Fatalf("test pod lost its volumes")
			}
			got, err := c.dec.decodePod([]byte(js))
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("error %v, want %v", err, wantErr)
			}
			if err != nil {
				return
			}
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(want)
			if string(a) != string(b) {
				t.Errorf("decodePod:\n%s\nwant:\n%s", a, b)
			}
			conditions += len(got.Status.Conditions)
			if prev != nil && len(got.Spec.Containers) > 0 && len(prev.Spec.Containers) > 0 && &got.Spec.Containers[0] == &prev.Spec.Containers[0] {
				shared++
			}
			prev = got
		})
	}
	// p2 and p3 share p1's containers (p2 its init containers too); p11
	// does not share p8's empty list. p6 has no owner UID. p22 shares p21's.
	if shared != 3 {
		t.Errorf("%d pods share their predecessor's containers, want 3", shared)
	}
	// p26 keeps its three, p27 the two that are not True, p28 none.
	if conditions != 5 {
		t.Errorf("%d conditions kept, want 5", conditions)
	}
}

// tokenSpec is a pod spec as the API server stores it: a projected token
// volume named vol, mounted as mount by the one container.
func tokenSpec(vol, mount string) string {
	return `{"volumes":[{"name":"` + vol + `","projected":{"defaultMode":420,"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}]}}],` +
		`"containers":[{"name":"app","image":"r/app:1","volumeMounts":[{"name":"` + mount + `","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}]}]}`
}

func TestSameButTokenVolume(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{`"kube-api-access-2pc8v"`, `"kube-api-access-hfd9m"`, true},
		{`[{"name":"kube-api-access-2pc8v"},{"name":"kube-api-access-abcde"}]`, `[{"name":"kube-api-access-hfd9m"},{"name":"kube-api-access-vwxyz"}]`, true},
		{`"kube-api-access-2pc8v","x"`, `"kube-api-access-hfd9m","y"`, false},
		{`"kube-api-access-2pc8v"`, `"kube-api-access-hfd9mm"`, false},
		{`"kube-api-access-2pc8v" `, `"other-access-abcdefg"`, false},
		{`"kube-api-access-2p"`, `"kube-api-access-hf"`, false}, // too short for a name: compared whole
		{`same`, `same`, true},
		{`same`, `sane`, false},
		{``, ``, true},
	}
	for _, c := range cases {
		if got := sameButTokenVolume([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("sameButTokenVolume(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
