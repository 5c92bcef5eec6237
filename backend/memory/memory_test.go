package memory_test

import (
	"testing"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/memory"
	"github.com/xsync-go/xsync/conformance"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) backend.Locker {
		return memory.New()
	}, conformance.Options{
		Size: func(t *testing.T, l backend.Locker) int { return l.(*memory.Locker).Len() },
	})
}
