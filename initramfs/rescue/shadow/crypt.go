package shadow

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/openwall/yescrypt-go"
)

// Hash methods, as login.defs names them.
const (
	Yescrypt = "YESCRYPT"
	SHA512   = "SHA512"
)

// Method is how a new hash is made.
type Method struct {
	Name string // Yescrypt or SHA512
	// Cost is YESCRYPT_COST_FACTOR (3..11; 5 if unset) or the SHA-512
	// rounds (SHA_CRYPT_MAX_ROUNDS, else SHA_CRYPT_MIN_ROUNDS, else 5000).
	Cost int
	// Why says where the choice came from, for the person at the prompt.
	Why string
}

func (m Method) String() string {
	return fmt.Sprintf("%s (cost %d; %s)", strings.ToLower(m.Name), m.Cost, m.Why)
}

// loginDefs reads the KEY VALUE lines of a login.defs file.
func loginDefs(data []byte) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			kv[f[0]] = f[1]
		}
	}
	return kv
}

// ChooseMethod picks the method from the system's login.defs (nil if it has
// none) and the user's current hash.
func ChooseMethod(defs []byte, current string) Method {
	kv := loginDefs(defs)
	m := Method{Name: Yescrypt, Why: "the default: /etc/login.defs names no method and the current hash is of no known kind"}
	switch enc := strings.ToUpper(kv["ENCRYPT_METHOD"]); {
	case enc == Yescrypt || enc == SHA512:
		m.Name, m.Why = enc, "ENCRYPT_METHOD "+enc+" in /etc/login.defs"
	case strings.HasPrefix(current, "$6$"):
		m.Name, m.Why = SHA512, "the method of the current hash"
	case strings.HasPrefix(current, "$y$"):
		m.Why = "the method of the current hash"
	}
	if m.Name == Yescrypt {
		m.Cost = 5
		if c, err := strconv.Atoi(kv["YESCRYPT_COST_FACTOR"]); err == nil {
			m.Cost = min(max(c, 3), 11) // the range yescrypt-go computes
		}
		return m
	}
	m.Cost = 5000
	for _, k := range []string{"SHA_CRYPT_MIN_ROUNDS", "SHA_CRYPT_MAX_ROUNDS"} {
		if r, err := strconv.Atoi(kv[k]); err == nil {
			m.Cost = min(max(r, 1000), 999_999_999)
		}
	}
	return m
}

// Hash makes a crypt(3) hash of password with a fresh random salt.
func (m Method) Hash(password []byte) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	switch m.Name {
	case Yescrypt:
		// libxcrypt's encoding of cost c: N = 2^(c+7), r = 32 ("j9T" at 5).
		setting := "$y$j" + string(itoa64[m.Cost+7-1]) + "T$" + encode64(salt)
		h, err := yescrypt.Hash(password, []byte(setting))
		return string(h), err
	case SHA512:
		return sha512Crypt(password, []byte(encode64(salt)[:16]), m.Cost), nil
	}
	return "", fmt.Errorf("hash method %q: want %s or %s", m.Name, Yescrypt, SHA512)
}

// Verify says whether password matches a yescrypt or SHA-512 crypt hash.
func Verify(hash string, password []byte) (bool, error) {
	var got string
	switch {
	case strings.HasPrefix(hash, "$y$"):
		h, err := yescrypt.Hash(password, []byte(hash))
		if err != nil {
			return false, err
		}
		got = string(h)
	case strings.HasPrefix(hash, "$6$"):
		f := strings.Split(hash, "$") // "", "6", [rounds=N,] salt, hash
		rounds, salt := 5000, ""
		switch {
		case len(f) == 4:
			salt = f[2]
		case len(f) == 5 && strings.HasPrefix(f[2], "rounds="):
			r, err := strconv.Atoi(strings.TrimPrefix(f[2], "rounds="))
			if err != nil {
				return false, errors.New("bad rounds in SHA-512 crypt hash")
			}
			rounds, salt = r, f[3]
		default:
			return false, errors.New("malformed SHA-512 crypt hash")
		}
		got = sha512Crypt(password, []byte(salt), rounds)
	default:
		return false, errors.New("not a yescrypt or SHA-512 crypt hash")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(hash)) == 1, nil
}

const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// encode64 is crypt's base-64: little-endian groups of 24 bits.
func encode64(src []byte) string {
	var dst []byte
	for i := 0; i < len(src); {
		v, bits := uint32(0), 0
		for ; bits < 24 && i < len(src); bits += 8 {
			v |= uint32(src[i]) << bits
			i++
		}
		for ; bits > 0; bits -= 6 {
			dst = append(dst, itoa64[v&0x3f])
			v >>= 6
		}
	}
	return string(dst)
}

// sha512Crypt is Ulrich Drepper's SHA-crypt ($6$), as glibc and libxcrypt
// compute it (https://www.akkadia.org/drepper/SHA-crypt.txt).
func sha512Crypt(pass, salt []byte, rounds int) string {
	rounds = min(max(rounds, 1000), 999_999_999)
	if len(salt) > 16 {
		salt = salt[:16]
	}
	sum := func(parts ...[]byte) []byte {
		h := sha512.New()
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(nil)
	}
	b := sum(pass, salt, pass)
	a := sha512.New()
	a.Write(pass)
	a.Write(salt)
	n := len(pass)
	for ; n > 64; n -= 64 {
		a.Write(b)
	}
	a.Write(b[:n])
	for n = len(pass); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(b)
		} else {
			a.Write(pass)
		}
	}
	c := a.Sum(nil)
	dp := sum(bytes.Repeat(pass, len(pass)))
	p := repeatTo(dp, len(pass))
	ds := sum(bytes.Repeat(salt, 16+int(c[0])))
	s := ds[:len(salt)]
	for i := range rounds {
		h := sha512.New()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(c[:0])
	}
	clear(p)
	clear(dp)
	var out strings.Builder
	out.WriteString("$6$")
	if rounds != 5000 {
		fmt.Fprintf(&out, "rounds=%d$", rounds)
	}
	out.Write(salt)
	out.WriteByte('$')
	enc := func(b2, b1, b0 byte, n int) {
		w := uint32(b2)<<16 | uint32(b1)<<8 | uint32(b0)
		for range n {
			out.WriteByte(itoa64[w&0x3f])
			w >>= 6
		}
	}
	for i := range 21 {
		// The spec's byte order: (0,21,42), (22,43,1), (44,2,23), ...
		x, y, z := i, i+21, i+42
		switch i % 3 {
		case 1:
			x, y, z = i+21, i+42, i
		case 2:
			x, y, z = i+42, i, i+21
		}
		enc(c[x], c[y], c[z], 4)
	}
	enc(0, 0, c[63], 2)
	return out.String()
}

func repeatTo(b []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}
