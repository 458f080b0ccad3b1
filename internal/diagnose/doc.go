// Package diagnose is the judge stage: pure rules that turn a cluster
// Snapshot and the image reports of the images involved into findings (a
// root-cause code per failing container, with the exact evidence seen), and
// per workload the remedies. It does no I/O: the caller collects the
// snapshot, asks the resolver for Requests(snap), and passes the reports in.
package diagnose
