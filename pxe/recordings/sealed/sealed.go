package sealed

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// A recording sealed to the customer's age recipient is stored as segments,
// one per piece the agent sent, each an age file of its own: a piece is on
// disk, encrypted, as soon as it arrives (one age stream would hold back its
// last 64 KiB chunk until the end). The file is
//
//	Magic
//	then per segment: plaintext offset (8 bytes, big-endian),
//	                  plaintext length (4), age file length (4), age file.
//
// The plaintext, segments in order, is the asciicast v2 recording.
const Magic = "lifeboat-recording-age-v1\n"

const segHeader = 16

// Segment is one sealed piece: where its plaintext goes, its sizes, and
// where its header is in the file.
type Segment struct {
	Off      int64
	Plain    uint32
	Sealed   uint32
	Position int64 // of the header in the file
}

// Segments reads a sealed file's segment headers.
func Segments(r io.ReaderAt, size int64) ([]Segment, error) {
	magic := make([]byte, len(Magic))
	if _, err := r.ReadAt(magic, 0); err != nil || string(magic) != Magic {
		return nil, errors.New("not a sealed recording")
	}
	var segs []Segment
	var h [segHeader]byte
	for pos := int64(len(Magic)); pos < size; {
		if _, err := r.ReadAt(h[:], pos); err != nil {
			return segs, fmt.Errorf("segment header at %d: %w", pos, err)
		}
		s := Segment{Off: int64(binary.BigEndian.Uint64(h[0:])), Plain: binary.BigEndian.Uint32(h[8:]), Sealed: binary.BigEndian.Uint32(h[12:]), Position: pos}
		if pos+segHeader+int64(s.Sealed) > size {
			return segs, fmt.Errorf("segment at %d is cut short", pos)
		}
		segs = append(segs, s)
		pos += segHeader + int64(s.Sealed)
	}
	return segs, nil
}

// Seal encrypts one piece, whose plaintext goes at off, as a segment.
func Seal(off int64, data []byte, to age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, segHeader))
	w, err := age.Encrypt(&buf, to)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint64(b[0:], uint64(off))
	binary.BigEndian.PutUint32(b[8:], uint32(len(data)))
	binary.BigEndian.PutUint32(b[12:], uint32(len(b)-segHeader))
	return b, nil
}

// Unseal writes the plaintext of a sealed recording read from r to w,
// decrypting each segment with the identities (the customer's age key).
// It checks that the segments follow one another without a gap.
func Unseal(w io.Writer, r io.Reader, ids ...age.Identity) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return errors.New("not a sealed recording")
	}
	var next int64
	for n := 1; ; n++ {
		var h [segHeader]byte
		if _, err := io.ReadFull(br, h[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("segment %d: %w", n, err)
		}
		off, plain, sealed := int64(binary.BigEndian.Uint64(h[0:])), binary.BigEndian.Uint32(h[8:]), binary.BigEndian.Uint32(h[12:])
		if off != next {
			return fmt.Errorf("segment %d starts at %d, want %d: the recording has a gap", n, off, next)
		}
		dr, err := age.Decrypt(io.LimitReader(br, int64(sealed)), ids...)
		if err != nil {
			return fmt.Errorf("segment %d: %w", n, err)
		}
		m, err := io.Copy(w, dr)
		if err != nil {
			return fmt.Errorf("segment %d: %w", n, err)
		}
		if m != int64(plain) {
			return fmt.Errorf("segment %d holds %d bytes, its header says %d", n, m, plain)
		}
		next += m
	}
}

// IsSealed says whether the start of a recording is a sealed one's.
func IsSealed(head []byte) bool { return bytes.HasPrefix(head, []byte(Magic)) }
