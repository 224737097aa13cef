package unlock

import (
	"errors"
	"io"
)

// Errors of ReadSecret.
var (
	ErrInterrupted = errors.New("interrupted")
	ErrTooLong     = errors.New("passphrase longer than 512 bytes")
)

// MaxSecret is the longest passphrase accepted (cryptsetup's own limit is
// 512 characters for interactive entry).
const MaxSecret = 512

// ReadSecret reads one line without echoing it, from a raw terminal (an SSH
// pty) or a plain stream (ssh host unlock < file). It understands backspace,
// Ctrl-U, Ctrl-C and Ctrl-D, and returns a []byte the caller must zero. On
// every path out, the bytes read so far are zeroed.
func ReadSecret(r io.ByteReader) ([]byte, error) {
	buf := make([]byte, 0, 64)
	wipe := func() {
		clear(buf[:cap(buf)])
	}
	for {
		c, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				return buf, nil // last line without a newline
			}
			wipe()
			return nil, err
		}
		switch c {
		case '\r', '\n':
			return buf, nil
		case 0x03: // Ctrl-C
			wipe()
			return nil, ErrInterrupted
		case 0x04: // Ctrl-D
			if len(buf) == 0 {
				return nil, io.EOF
			}
		case 0x7f, 0x08: // backspace
			if len(buf) > 0 {
				buf[len(buf)-1] = 0
				buf = buf[:len(buf)-1]
			}
		case 0x15: // Ctrl-U
			clear(buf)
			buf = buf[:0]
		default:
			if len(buf) == MaxSecret {
				wipe()
				return nil, ErrTooLong
			}
			if len(buf) == cap(buf) {
				nb := make([]byte, len(buf), 2*cap(buf))
				copy(nb, buf)
				clear(buf)
				buf = nb
			}
			buf = append(buf, c)
		}
	}
}

// SecretReader is an io.ByteReader over r with a buffer of its own, which
// Wipe clears: the bytes of a passphrase pass through a reader's buffer,
// and bufio's cannot be reached to clear it.
type SecretReader struct {
	r      io.Reader
	buf    [1024]byte
	off, n int
	err    error
}

// NewSecretReader returns a SecretReader of r.
func NewSecretReader(r io.Reader) *SecretReader { return &SecretReader{r: r} }

// ReadByte implements io.ByteReader.
func (s *SecretReader) ReadByte() (byte, error) {
	for s.off == s.n {
		if s.err != nil {
			return 0, s.err
		}
		clear(s.buf[:s.n])
		s.off = 0
		s.n, s.err = s.r.Read(s.buf[:])
	}
	c := s.buf[s.off]
	s.buf[s.off] = 0
	s.off++
	return c, nil
}

// Wipe clears what is buffered and not yet read.
func (s *SecretReader) Wipe() {
	clear(s.buf[:])
	s.off, s.n = 0, 0
}
