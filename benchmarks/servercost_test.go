package benchmarks

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/bsm/redislock"

	"github.com/xsync-go/xsync"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/benchutil"
	"github.com/xsync-go/xsync/internal/itest"
)

// BenchmarkServerCost measures what an acquire+release costs one Redis
// in server time, from INFO commandstats: for each contender, b.N pairs
// on keys that were locked once before (as a busy key's are), then the
// microseconds Redis spent in the contender's top-level commands, per
// pair. Commands that scripts call count inside the script's own time
// (Redis also lists them on their own, which is not added again).
func BenchmarkServerCost(b *testing.B) {
	c := itest.RedisClient(b, itest.StartRedis(b))
	ctx := context.Background()
	name := unique("xsync-redis")
	b.Cleanup(xsync.Swap(name, xredis.New(c, xredis.WithPrefix(unique("p")+":"))))
	rl := redislock.New(c)
	n := 0
	contenders := []struct {
		name string
		cmds []string // its top-level commands
		pair func(key string)
	}{
		{"xsync-redis", []string{"evalsha"}, func(key string) { benchutil.LockUnlock(b, name, key)() }},
		{"redislock", []string{"evalsha"}, func(key string) {
			l, err := rl.Obtain(ctx, "redislock:"+key, 10*time.Second, nil)
			must(b, err)
			must(b, l.Release(ctx))
		}},
		{"raw", []string{"set", "evalsha"}, func(key string) {
			n++
			v := strconv.Itoa(n)
			if ok, err := c.SetNX(ctx, "raw:"+key, v, 10*time.Second).Result(); !ok || err != nil {
				b.Fatal(ok, err)
			}
			if r, err := rawRelease.Run(ctx, c, []string{"raw:" + key}, v).Int(); r != 1 || err != nil {
				b.Fatal(r, err)
			}
		}},
	}
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	for _, ct := range contenders {
		for _, k := range keys {
			ct.pair(k) // every key has been locked before
		}
	}
	b.ResetTimer()
	for _, ct := range contenders {
		must(b, c.ConfigResetStat(ctx).Err())
		for _, k := range keys {
			ct.pair(k)
		}
		stats, err := c.Info(ctx, "commandstats").Result()
		must(b, err)
		usec := 0.0
		for _, cmd := range ct.cmds {
			usec += benchutil.CommandUsec(b, stats, cmd)
		}
		b.ReportMetric(usec/float64(b.N), ct.name+"-server-µs")
	}
}
