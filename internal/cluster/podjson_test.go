package cluster

import (
	"encoding/json"
	"fmt"
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
	}
	c := newCollector()
	var shared int
	var prev *corev1.Pod
	for i, js := range pods {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want := &corev1.Pod{}
			wantErr := unmarshal([]byte(js), "Pod", want)
			want.ManagedFields = nil // not read (see objectMetaWire)
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
			if prev != nil && len(got.Spec.Containers) > 0 && len(prev.Spec.Containers) > 0 && &got.Spec.Containers[0] == &prev.Spec.Containers[0] {
				shared++
			}
			prev = got
		})
	}
	// p2 and p3 share p1's containers (p2 its init containers too); p11
	// does not share p8's empty list. p6 has no owner UID.
	if shared != 2 {
		t.Errorf("%d pods share their predecessor's containers, want 2", shared)
	}
}
