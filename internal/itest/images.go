package itest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Images built on this machine when the configured one is missing and
// cannot be pulled (see build-images.sh beside this file).
const (
	LocalRedisImage = "xsync-test/redis:7"
	LocalEtcdImage  = "xsync-test/etcd:3.6"
)

type imageKind struct {
	env, official, local, script string // script: build-images.sh's argument
}

var (
	redisImage = imageKind{RedisImageEnv, DefaultRedisImage, LocalRedisImage, "redis"}
	etcdImage  = imageKind{EtcdImageEnv, DefaultEtcdImage, LocalEtcdImage, "etcd"}
)

var (
	imagesMu sync.Mutex
	resolved = map[string]string{} // by env: the image to run
)

// resolveImage returns the image to start for kind, provisioning it if
// needed:
//
//   - the image named by kind.env, if set (pulled if missing; a failure
//     names the variable);
//   - otherwise the official image if it is present, or the locally built
//     one if that is present;
//   - otherwise the official image if it can be pulled;
//   - otherwise the local image, built here by build-images.sh (Redis and
//     PostgreSQL from Debian's packages, etcd from the etcd server module), once per
//     machine: a file lock keeps concurrent test binaries from building it
//     twice, and progress goes to stderr.
func resolveImage(t testing.TB, kind imageKind) string {
	t.Helper()
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if img, ok := resolved[kind.env]; ok {
		return img
	}
	d := docker(t)
	ctx := context.Background()
	present := func(img string) bool {
		_, err := d.ImageInspect(ctx, img)
		return err == nil
	}
	pull := func(img string) bool {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		rc, err := d.ImagePull(pctx, img, client.ImagePullOptions{})
		if err != nil {
			return false
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err == nil && present(img)
	}
	var img string
	switch want := os.Getenv(kind.env); {
	case want != "":
		if !present(want) && !pull(want) {
			t.Fatalf("image %s (from %s) is not present and cannot be pulled; unset %s to have the tests build %s",
				want, kind.env, kind.env, kind.local)
		}
		img = want
	case present(kind.official):
		img = kind.official
	case present(kind.local):
		img = kind.local
	case pull(kind.official):
		img = kind.official
	default:
		if err := buildImage(kind); err != nil {
			t.Fatalf("image %s cannot be pulled, and building %s failed: %v", kind.official, kind.local, err)
		}
		img = kind.local
	}
	resolved[kind.env] = img
	return img
}

// buildImage runs build-images.sh for kind under a machine-wide file lock,
// then checks that the image exists.
func buildImage(kind imageKind) error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "xsync-itest-images.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return err
	}
	defer lock.Close()
	fmt.Fprintf(os.Stderr, "itest: %s is missing and %s cannot be pulled: building it (first time on this machine: about 10 s for Redis or PostgreSQL, 2 min for etcd)\n",
		kind.local, kind.official)
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "build-images.sh")
	start := time.Now()
	cmd := exec.Command("bash", script, kind.script)
	// The script builds the local name; an explicit variable would make
	// it build something else.
	cmd.Env = append(os.Environ(), kind.env+"="+kind.local)
	cmd.Stdout = io.Discard // the variables it prints are for shells
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", script, kind.script, err)
	}
	fmt.Fprintf(os.Stderr, "itest: %s ready after %v\n", kind.local, time.Since(start).Round(100*time.Millisecond))
	return nil
}
