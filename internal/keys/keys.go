// Package keys shows lock keys in messages and logs without letting them
// grow: what the core, the CLI and the observers share.
package keys

import (
	"fmt"
	"hash/fnv"
	"strconv"
)

// Shown is how many bytes of a long key Short shows.
const Shown = 48

// Short is key as messages show it: quoted, and if it is long, cut to its
// first Shown bytes plus its length and a hash.
func Short(key string) string {
	if len(key) <= Shown+16 {
		return strconv.Quote(key)
	}
	return fmt.Sprintf("%q... (%d bytes, fnv32a %08x)", key[:Shown], len(key), Hash(key))
}

// Hash is key's 32-bit FNV-1a hash.
func Hash(key string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return h.Sum32()
}

// Trim is Short without the quotes: the key's first Shown bytes, and for
// a long key its length and hash, for a structured log that quotes
// values itself.
func Trim(key string) string {
	if len(key) <= Shown+16 {
		return key
	}
	return fmt.Sprintf("%s... (%d bytes, fnv32a %08x)", key[:Shown], len(key), Hash(key))
}
