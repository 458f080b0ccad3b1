// Command etcd is etcd's own server main (go.etcd.io/etcd/server/v3/etcdmain),
// built from the module proxy because Debian's etcd-server is too old for
// Kubernetes 1.37.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
