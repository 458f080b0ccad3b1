// Package cluster is archfit's collect stage: it reads what a cluster holds
// (nodes, workloads, pods, events and the logs of crashed containers) from a
// live API server (LoadLive) or from kubectl dumps on disk (LoadFiles) into one
// typed Snapshot, with every pod linked to its node and its top owner.
//
// # Logs next to a dump
//
// kubectl dumps hold no logs, yet the "exec format error" text is usually only
// in the log of the crashed container. LoadFiles reads them from a directory
// tree laid out as
//
//	logs/NAMESPACE/POD/CONTAINER.previous.log   what `kubectl logs --previous` prints
//	logs/NAMESPACE/POD/CONTAINER.log            what `kubectl logs` prints
//
// The logs directory is found (a) next to every file given with -f (so
// `-f dump.yaml` reads ./logs/ beside dump.yaml), (b) as a direct child of every
// directory given with -f, or (c) when -f names it. It is always walked
// recursively. Inside a directory walked with -R, any *.log file is a log
// identified by its last three path elements. Logs never name a container
// that is not in the dump silently: they are kept in Snapshot.Logs with no Pod.
package cluster
