// Package conformance checks archfit's pull model against real container
// runtimes: containerd releases built from the Go module proxy by
// hack/runtimes.sh, for amd64 and for arm64 (run under qemu-aarch64-static),
// each started with a fresh state directory and driven through the CRI, as
// a kubelet drives it.
//
// Every case is an image shape (an index, a manifest list, a single
// manifest, entries without a platform, os.features, fallback variants,
// nested indexes) pushed to an in-process registry. What each runtime did
// with it (the entry it chose, or its exact error) is recorded in
// testdata/truth.json; TestModelMatchesTruth checks archfit's prediction
// against that table on every test run, and TestRuntimes runs the real
// runtimes, failing when one disagrees with the table.
package conformance
