package handoff

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// KeyDir is where systemd-cryptsetup looks for a volume's key in the initrd
// (/etc/cryptsetup-keys.d/NAME.key). It is not under /run, which the OS's
// initrd mounts a fresh tmpfs over.
const KeyDir = "etc/cryptsetup-keys.d"

// VolumeNames maps LUKS UUIDs to the names the OS gives them, from
// rd.luks.name=UUID=NAME on its command line. A volume without one gets
// systemd's default name, luks-UUID.
func VolumeNames(cmdline string, uuids []string) map[string]string {
	named := map[string]string{}
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, "rd.luks.name=")
		if !ok {
			continue
		}
		if len(v) > 5 && strings.EqualFold(v[:5], "uuid=") {
			v = v[5:]
		}
		uuid, name, ok := strings.Cut(v, "=")
		uuid = strings.ToLower(uuid)
		if ok && validName(name) {
			named[uuid] = name
		}
	}
	out := map[string]string{}
	for _, u := range uuids {
		if n, ok := named[strings.ToLower(u)]; ok {
			out[u] = n
		} else {
			out[u] = "luks-" + u
		}
	}
	return out
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]{1,64}$`)

func validName(n string) bool { return nameRE.MatchString(n) && n != "." && n != ".." }

// KeyArchive builds a newc cpio holding key at KeyDir/NAME.key for each
// name. The returned buffer holds the key: zero it after use.
func KeyArchive(names []string, key []byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(1024 + len(names)*(len(key)+256))
	w := cpio.Newc.Writer(&b)
	recs := []cpio.Record{cpio.Directory("etc", 0o755), cpio.Directory(KeyDir, 0o700)}
	for _, n := range names {
		if !validName(n) {
			return nil, fmt.Errorf("volume name %q cannot be a key file name", n)
		}
		recs = append(recs, cpio.StaticRecord(key, cpio.Info{Name: KeyDir + "/" + n + ".key", Mode: 0o100400}))
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return nil, err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
