package itest

import (
	"fmt"
	"strings"
	"testing"
)

// Secrets collects the messages of the errors a test sees and checks, when
// the test ends, that none shows a password (the words given) or private
// key material.
type Secrets struct {
	words    []string
	messages []string
}

// NewSecrets returns a Secrets that watches for words and "PRIVATE KEY".
func NewSecrets(t testing.TB, words ...string) *Secrets {
	s := &Secrets{words: append(words, "PRIVATE KEY")}
	t.Cleanup(func() {
		for _, m := range s.messages {
			for _, w := range s.words {
				if strings.Contains(m, w) {
					t.Errorf("message shows secret material %q: %s", w, m)
				}
			}
		}
	})
	return s
}

// See records err's message (Error and %+v) and returns err.
func (s *Secrets) See(err error) error {
	if err != nil {
		s.messages = append(s.messages, err.Error(), fmt.Sprintf("%+v", err))
	}
	return err
}
