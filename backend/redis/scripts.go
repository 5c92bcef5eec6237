package redis

import (
	_ "embed"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// The scripts, one atomic step each on the server. A chunk of shared
// functions goes before the scripts that use them (or within: see
// mutexScript): short.lua and common.lua for the mutexes' keys, zset.lua
// for the sorted sets of semaphores and read-write locks; common.lua and
// zset.lua each after atleast.lua, which both use.
var (
	//go:embed atleast.lua
	atleastLua string
	//go:embed short.lua
	shortLua string
	//go:embed common.lua
	commonOwnLua string
	commonLua    = atleastLua + commonOwnLua
	//go:embed zset.lua
	zsetOwnLua string
	zsetLua    = atleastLua + zsetOwnLua

	//go:embed read.lua
	readLua string // the hot scripts' first step

	//go:embed acquire.lua
	acquireLua string
	// acquireScript takes a free key in the short layout (see common.lua),
	// acquireHashScript always in a hash (WithHashLayout).
	acquireScript     = mutexScript("local hashonly = false\n" + readLua + acquireLua)
	acquireHashScript = mutexScript("local hashonly = true\n" + readLua + acquireLua)
	//go:embed release.lua
	releaseLua    string
	releaseScript = mutexScript(readLua + releaseLua)
	//go:embed refresh.lua
	refreshLua    string
	refreshScript = mutexScript(readLua + refreshLua)
	//go:embed abandon.lua
	abandonLua    string
	abandonScript = mutexScript(abandonLua)
	//go:embed queue.lua
	queueLua    string
	queueScript = mutexScript(queueLua)
	//go:embed dequeue.lua
	dequeueLua    string
	dequeueScript = mutexScript(dequeueLua)
	//go:embed held.lua
	heldLua    string
	heldScript = mutexScript(heldLua)
	//go:embed inspect.lua
	inspectLua    string
	inspectScript = mutexScript(inspectLua)
	//go:embed force.lua
	forceLua    string
	forceScript = mutexScript(forceLua)

	//go:embed sem_acquire.lua
	semAcquireLua    string
	semAcquireScript = goredis.NewScript(zsetLua + semAcquireLua)
	//go:embed sem_abandon.lua
	semAbandonLua    string
	semAbandonScript = goredis.NewScript(zsetLua + semAbandonLua)
	//go:embed sem_release.lua
	semReleaseLua    string
	semReleaseScript = goredis.NewScript(zsetLua + semReleaseLua)
	//go:embed sem_refresh.lua
	semRefreshLua    string
	semRefreshScript = goredis.NewScript(zsetLua + semRefreshLua)

	//go:embed rw_acquire.lua
	rwAcquireLua    string
	rwAcquireScript = goredis.NewScript(zsetLua + rwAcquireLua)
	//go:embed rw_abandon.lua
	rwAbandonLua    string
	rwAbandonScript = goredis.NewScript(zsetLua + rwAbandonLua)
	//go:embed rw_release.lua
	rwReleaseLua    string
	rwReleaseScript = goredis.NewScript(zsetLua + rwReleaseLua)
	//go:embed rw_refresh.lua
	rwRefreshLua    string
	rwRefreshScript = goredis.NewScript(zsetLua + rwRefreshLua)
	//go:embed rw_held.lua
	rwHeldLua    string
	rwHeldScript = goredis.NewScript(zsetLua + rwHeldLua)
	//go:embed rw_join.lua
	rwJoinLua    string
	rwJoinScript = goredis.NewScript(zsetLua + rwJoinLua)
	//go:embed rw_withdraw.lua
	rwWithdrawLua    string
	rwWithdrawScript = goredis.NewScript(rwWithdrawLua)

	//go:embed zset_held.lua
	zsetHeldLua    string
	zsetHeldScript = goredis.NewScript(zsetLua + zsetHeldLua)
	//go:embed zset_inspect.lua
	zsetInspectLua    string
	zsetInspectScript = goredis.NewScript(zsetLua + zsetInspectLua)
	//go:embed zset_force.lua
	zsetForceLua    string
	zsetForceScript = goredis.NewScript(zsetLua + zsetForceLua)

	//go:embed multi_acquire.lua
	multiAcquireLua    string
	multiAcquireScript = mutexScript(multiAcquireLua)
	//go:embed multi_release.lua
	multiReleaseLua    string
	multiReleaseScript = mutexScript(multiReleaseLua)
	//go:embed multi_refresh.lua
	multiRefreshLua    string
	multiRefreshScript = mutexScript(multiRefreshLua)
)

// commonMark is the line of a mutex script where mutexScript puts the
// shared functions.
const commonMark = "\n-- (common.lua)\n"

// mutexScript builds the script of a mutex's key from own, with the
// shared functions (short.lua, atleast.lua, common.lua) at own's line
// commonMark, or before own if it has none. A script whose path for the
// short layout comes before that line returns on it before the functions
// are defined, which would cost that path more than its own logic
// (measured: see docs/benchmarks.md).
func mutexScript(own string) *goredis.Script {
	before, after, ok := strings.Cut(own, commonMark)
	if !ok {
		before, after = "", own
	}
	return goredis.NewScript(before + "\n" + shortLua + commonLua + after)
}
