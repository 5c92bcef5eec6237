package etcd

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
)

// listKinds are the spaces List reads, in its order: the mutexes (held
// keys; their queues are counted by each one's Inspect), then the
// semaphores and the read-write locks (directories named by the key in
// hex, whose order is the keys' order).
var listKinds = []struct {
	kind, space string
	hex         bool
}{{"mutex", mutexSpace, false}, {"semaphore", semaphoreSpace, true}, {"rwlock", rwSpace, true}, {"election", electionSpace + mutexSpace, false}}

// List implements [backend.Lister]: ranges over each kind's space, by
// key, inspecting each lock it finds (a few requests each). The cursor is
// the kind's place in the order, then the last key listed.
func (l *Locker) List(ctx context.Context, prefix, cursor string, limit int) ([]backend.Listed, string, error) {
	kind, after := 0, ""
	if cursor != "" {
		if cursor[0] < '0' || int(cursor[0]-'0') >= len(listKinds) {
			return nil, "", fmt.Errorf("etcd: list: cursor %q is not one List returned", cursor)
		}
		kind, after = int(cursor[0]-'0'), cursor[1:]
	}
	var out []backend.Listed
	for ; kind < len(listKinds); kind, after = kind+1, "" {
		k := listKinds[kind]
		keys, more, err := l.listKeys(ctx, k.space, k.hex, prefix, after, limit-len(out))
		if err != nil {
			return nil, "", err
		}
		for _, key := range keys {
			lk := backend.Listed{Kind: k.kind, Key: key}
			switch k.kind {
			case "mutex":
				lk.Info, err = mutex{l, key}.Inspect(ctx)
			case "semaphore":
				lk.Info, err = semaphore{l: l, key: key}.Inspect(ctx)
			case "election":
				lk.Info, err = mutex{l.elections(), key}.Inspect(ctx)
			default:
				lk.Info, err = reader{l, key}.Inspect(ctx)
			}
			if err != nil {
				return nil, "", err
			}
			if len(lk.Info.Holders) > 0 || lk.Info.Waiting > 0 {
				out = append(out, lk)
			}
		}
		if more {
			return out, string(rune('0'+kind)) + keys[len(keys)-1], nil
		}
		if len(out) == limit && kind+1 < len(listKinds) {
			return out, string(rune('0' + kind + 1)), nil
		}
	}
	return out, "", nil
}

// listKeys returns up to n keys whose locks live in space (by their
// etcd keys, or as directories named by the key in hex) and begin with
// prefix, after the key after; more says whether keys remain.
func (l *Locker) listKeys(ctx context.Context, space string, inHex bool, prefix, after string, n int) (keys []string, more bool, err error) {
	enc := func(s string) string { return s }
	if inHex {
		enc = func(s string) string { return hex.EncodeToString([]byte(s)) }
	}
	base := l.prefix + space
	from, end := base+enc(prefix), clientv3.GetPrefixRangeEnd(base+enc(prefix))
	if after != "" {
		from = base + enc(after) + "\x00" // past the key itself
		if inHex {
			from = base + enc(after) + "0" // past its directory: '/' < '0'
		}
	}
	for {
		resp, err := l.client.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(int64(n+1)*4))
		if err != nil {
			return nil, false, fmt.Errorf("etcd: list: %w", l.classify(err))
		}
		for _, kv := range resp.Kvs {
			name := string(kv.Key[len(base):])
			if inHex {
				dir, _, _ := strings.Cut(name, "/")
				b, err := hex.DecodeString(dir)
				if err != nil {
					continue // not a lock of ours
				}
				name = string(b)
			}
			if len(keys) > 0 && keys[len(keys)-1] == name {
				continue
			}
			if len(keys) == n {
				return keys, true, nil
			}
			keys = append(keys, name)
		}
		if !resp.More {
			return keys, false, nil
		}
		last := resp.Kvs[len(resp.Kvs)-1].Key
		from = string(last) + "\x00"
	}
}
