// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 for
// the integration tests' image (see ../build-images.sh). It is a module of
// its own so that the library's go.mod does not depend on the server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
