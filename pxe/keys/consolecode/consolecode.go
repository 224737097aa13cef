package consolecode

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/argon2"
)

// New makes a console grant's one-time code: 8 digits, to be
// read out over a phone and typed at a server's console.
func New() string {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		n = big.NewInt(0) // crypto/rand does not fail on Linux
	}
	s := fmt.Sprintf("%08d", n.Int64())
	return s[:4] + "-" + s[4:]
}

// Hash is what the server keeps and the agent checks of a
// console code, salted with the grant's ID. Spaces and dashes typed with the
// code do not count. An 8-digit code has only 10^8 values: a fast hash of it,
// read from the database or off the boot network, would give the code back
// in seconds, so it is argon2id (19 MiB, 2 passes: OWASP's minimum), which
// makes that months of work while one check at the console takes a blink.
func Hash(grantID, code string) string {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
	salt := sha256.Sum256([]byte("lifeboat-console-code\x00" + grantID))
	return hex.EncodeToString(argon2.IDKey([]byte(code), salt[:], 2, 19*1024, 1, 32))
}
