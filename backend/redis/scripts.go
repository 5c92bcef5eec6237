package redis

import (
	_ "embed"

	goredis "github.com/redis/go-redis/v9"
)

// The scripts, one atomic step each on the server. A chunk of shared
// functions goes before the scripts that use them: common.lua for the
// mutexes' hashes, zset.lua for the sorted sets of semaphores and
// read-write locks, each after atleast.lua, which both use.
var (
	//go:embed atleast.lua
	atleastLua string
	//go:embed common.lua
	commonOwnLua string
	commonLua    = atleastLua + commonOwnLua
	//go:embed zset.lua
	zsetOwnLua string
	zsetLua    = atleastLua + zsetOwnLua

	//go:embed acquire.lua
	acquireLua    string
	acquireScript = goredis.NewScript(commonLua + acquireLua)
	//go:embed release.lua
	releaseLua    string
	releaseScript = goredis.NewScript(commonLua + releaseLua)
	//go:embed refresh.lua
	refreshLua    string
	refreshScript = goredis.NewScript(refreshLua)
	//go:embed abandon.lua
	abandonLua    string
	abandonScript = goredis.NewScript(commonLua + abandonLua)
	//go:embed queue.lua
	queueLua    string
	queueScript = goredis.NewScript(commonLua + queueLua)
	//go:embed dequeue.lua
	dequeueLua    string
	dequeueScript = goredis.NewScript(commonLua + dequeueLua)
	//go:embed held.lua
	heldLua    string
	heldScript = goredis.NewScript(heldLua)
	//go:embed inspect.lua
	inspectLua    string
	inspectScript = goredis.NewScript(commonLua + inspectLua)
	//go:embed force.lua
	forceLua    string
	forceScript = goredis.NewScript(commonLua + forceLua)

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
	multiAcquireScript = goredis.NewScript(commonLua + multiAcquireLua)
	//go:embed multi_release.lua
	multiReleaseLua    string
	multiReleaseScript = goredis.NewScript(commonLua + multiReleaseLua)
	//go:embed multi_refresh.lua
	multiRefreshLua    string
	multiRefreshScript = goredis.NewScript(multiRefreshLua)
)
