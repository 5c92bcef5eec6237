package benchmarks

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/xsync-go/xsync"
	_ "github.com/xsync-go/xsync/backend/etcd"
	_ "github.com/xsync-go/xsync/backend/redis"
	_ "github.com/xsync-go/xsync/backend/redlock"
	"github.com/xsync-go/xsync/internal/itest"
)

// The election handover, measured as a user sees it, per backend and
// beside etcd's concurrency.Election in the same run (TTL 2s):
//
//   - resign: a leader resigns while a standby campaigns; the time until
//     the standby's Campaign returns;
//   - kill: the leader is a process of its own, killed with SIGKILL; the
//     time until the standby's Campaign returns.
//
//	go test -run TestElectionHandover -v .   (ELECTION_ROUNDS, default 5)
//
// It is a measurement, not a check: it fails only if a handover does not
// happen at all.

const childEnv = "XSYNC_ELECTION_CHILD" // "xsync URL NAME" or "etcd ENDPOINT NAME"

// electionChild is the leader process: it campaigns, says LEADING, and
// waits to be killed.
func electionChild() {
	f := strings.Fields(os.Getenv(childEnv))
	ctx := context.Background()
	switch f[0] {
	case "xsync":
		l, _, err := xsync.Open(ctx, f[1])
		if err != nil {
			panic(err)
		}
		if _, err := xsync.NewClient(l).Election(f[2]).Campaign(ctx, xsync.WithTTL(2*time.Second)); err != nil {
			panic(err)
		}
	case "etcd":
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{f[1]}, DialTimeout: 5 * time.Second})
		if err != nil {
			panic(err)
		}
		s, err := concurrency.NewSession(c, concurrency.WithTTL(2))
		if err != nil {
			panic(err)
		}
		if err := concurrency.NewElection(s, f[2]).Campaign(ctx, "child"); err != nil {
			panic(err)
		}
	}
	fmt.Println("LEADING")
	select {}
}

// candidate is one way to campaign: xsync on a URL, or etcd's Election.
type candidate struct {
	name  string
	child string // the child's XSYNC_ELECTION_CHILD, with %s for the election's name
	// campaign starts a campaign that returns when it leads; resign ends
	// that term.
	campaign func(t *testing.T, ctx context.Context, election string) (resign func())
}

func xsyncCandidate(name, url string) candidate {
	return candidate{name: name, child: "xsync " + url + " %s",
		campaign: func(t *testing.T, ctx context.Context, election string) func() {
			l, closer, err := xsync.Open(ctx, url)
			if err != nil {
				t.Error(err)
				return func() {}
			}
			term, err := xsync.NewClient(l).Election(election).Campaign(ctx, xsync.WithTTL(2*time.Second), xsync.WithRetryInterval(100*time.Millisecond))
			if err != nil {
				t.Error(err)
				return func() { closer.Close() }
			}
			return func() { term.Resign(context.Background()); closer.Close() }
		}}
}

func etcdCandidate(endpoint string) candidate {
	return candidate{name: "etcd concurrency.Election", child: "etcd " + endpoint + " %s",
		campaign: func(t *testing.T, ctx context.Context, election string) func() {
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
			if err != nil {
				t.Error(err)
				return func() {}
			}
			s, err := concurrency.NewSession(c, concurrency.WithTTL(2))
			if err != nil {
				t.Error(err)
				return func() { c.Close() }
			}
			e := concurrency.NewElection(s, election)
			if err := e.Campaign(ctx, "candidate"); err != nil {
				t.Error(err)
				return func() { s.Close(); c.Close() }
			}
			return func() { e.Resign(context.Background()); s.Close(); c.Close() }
		}}
}

func TestElectionHandover(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		electionChild()
		return
	}
	rounds := 5
	if n, err := fmt.Sscan(os.Getenv("ELECTION_ROUNDS"), &rounds); n != 1 || err != nil {
		rounds = 5
	}
	redis := itest.StartRedis(t)
	nodes := itest.StartRedisN(t, 3)
	etcd := itest.StartEtcd(t)
	var hosts []string
	for _, n := range nodes {
		hosts = append(hosts, n.Endpoint())
	}
	candidates := []candidate{
		xsyncCandidate("xsync redis", "redis://"+redis.Endpoint()),
		xsyncCandidate("xsync redlock", "redlock://"+strings.Join(hosts, ",")),
		xsyncCandidate("xsync etcd", "etcd://"+etcd.Endpoint()),
		etcdCandidate(etcd.Endpoint()),
	}
	type result struct{ resign, kill []time.Duration }
	results := map[string]*result{}
	for r := range rounds {
		for _, c := range candidates { // each round runs every candidate in turn
			res := results[c.name]
			if res == nil {
				res = &result{}
				results[c.name] = res
			}
			res.resign = append(res.resign, resignHandover(t, c, fmt.Sprintf("resign-%d-%d", r, time.Now().UnixNano())))
			res.kill = append(res.kill, killHandover(t, c, fmt.Sprintf("kill-%d-%d", r, time.Now().UnixNano())))
		}
	}
	t.Logf("election handover, TTL 2s, %d rounds (median, min-max):", rounds)
	for _, c := range candidates {
		res := results[c.name]
		t.Logf("  %-26s resign→new leader %s   SIGKILL→new leader %s", c.name, summary(res.resign), summary(res.kill))
	}
}

func summary(ds []time.Duration) string {
	slices.Sort(ds)
	return fmt.Sprintf("%v (%v-%v)", ds[len(ds)/2].Round(100*time.Microsecond), ds[0].Round(100*time.Microsecond), ds[len(ds)-1].Round(100*time.Microsecond))
}

// resignHandover: a leader resigns while a standby waits.
func resignHandover(t *testing.T, c candidate, election string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resign := c.campaign(t, ctx, election)
	led := make(chan time.Time, 1)
	go func() {
		r := c.campaign(t, ctx, election)
		led <- time.Now()
		r()
	}()
	time.Sleep(300 * time.Millisecond) // the standby is waiting by then: nothing to await from outside
	start := time.Now()
	resign()
	return (<-led).Sub(start)
}

// killHandover: the leader is a child process, killed with SIGKILL.
func killHandover(t *testing.T, c candidate, election string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestElectionHandover$")
	cmd.Env = append(os.Environ(), childEnv+"="+fmt.Sprintf(c.child, election))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "LEADING" {
	}
	led := make(chan time.Time, 1)
	go func() {
		r := c.campaign(t, ctx, election)
		led <- time.Now()
		r()
	}()
	time.Sleep(300 * time.Millisecond) // the standby is waiting by then
	start := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-led:
		return at.Sub(start)
	case <-ctx.Done():
		t.Fatalf("%s: no new leader after the leader was killed", c.name)
	}
	return 0
}
