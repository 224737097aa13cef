package sealed

import (
	"bytes"
	"io"
	"testing"

	"filippo.io/age"
)

// FuzzUnseal: whatever a downloaded sealed recording holds, Unseal returns
// an error or the plaintext, never a panic or a hang.
func FuzzUnseal(f *testing.F) {
	id, _ := age.GenerateX25519Identity()
	seg, _ := Seal(0, []byte("{\"version\":2}\n"), id.Recipient())
	f.Add(append([]byte(Magic), seg...))
	f.Add([]byte(Magic + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\xff\xff\xff\xff"))
	f.Add([]byte("not sealed"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = Unseal(io.Discard, bytes.NewReader(data), id)
		_, _ = Segments(bytes.NewReader(data), int64(len(data)))
	})
}
