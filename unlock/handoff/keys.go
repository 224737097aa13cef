package handoff

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
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

// Vol is an opened volume to hand over.
type Vol struct {
	UUID string
	Path string // /dev/vda2
}

// Plan is how the passphrase reaches the OS initrd's own unlocking, the way
// its flavour expects it, in a cpio appended after the OS initrd (a later
// file of the same name replaces an earlier one as the kernel unpacks).
// Nothing goes under /run, which both systemd and initramfs-tools mount a
// fresh tmpfs over.
type Plan struct {
	Flavour Flavour
	Names   []string // the volumes' names in the OS, sorted
	// KeyPaths are where the key goes; Files are other files (a rewritten
	// crypttab): never secret.
	KeyPaths []string
	// KeyOf names the volume (UUID) whose key goes to each key path:
	// volumes may have passphrases of their own.
	KeyOf map[string]string
	Files map[string][]byte
	// Notes say what could not be handed over, for the customer, before
	// the kexec.
	Notes []string
}

// MakePlan decides where the key goes for each opened volume.
func MakePlan(in *Initrd, cmdline string, vols []Vol) Plan {
	p := Plan{Flavour: in.Flavour, Files: map[string][]byte{}, KeyOf: map[string]string{}}
	var uuids []string
	for _, v := range vols {
		uuids = append(uuids, v.UUID)
	}
	named := VolumeNames(cmdline, uuids)
	entry := func(v Vol) (int, bool) {
		for i, e := range in.Crypttab {
			if e.matches(v.UUID, v.Path) {
				return i, true
			}
		}
		return -1, false
	}
	switch in.Flavour {
	case FlavourInitramfsTools:
		tab := append([]CrypttabEntry(nil), in.Crypttab...)
		changed := false
		for _, v := range vols {
			i, ok := entry(v)
			if !ok {
				p.Notes = append(p.Notes, fmt.Sprintf("%s is not in the OS initrd's crypttab: the OS unlocks it later itself (it may ask for the passphrase)", v.Path))
				continue
			}
			e := tab[i]
			if !validName(e.Name) {
				p.Notes = append(p.Notes, fmt.Sprintf("%s: its crypttab name %q cannot be a key file name", v.Path, e.Name))
				continue
			}
			if !e.keyless() {
				p.Notes = append(p.Notes, fmt.Sprintf("%s (%s): the OS's crypttab gives it the key file %s, which is used instead", v.Path, e.Name, e.KeyFile))
				continue
			}
			key := "cryptroot/keyfiles/" + e.Name + ".key"
			tab[i].KeyFile = "/" + key
			changed = true
			p.KeyPaths = append(p.KeyPaths, key)
			p.KeyOf[key] = v.UUID
			p.Names = append(p.Names, e.Name)
		}
		if changed {
			p.Files["cryptroot/crypttab"] = formatCrypttab(tab)
		}
	case FlavourMkinitcpio:
		// The encrypt hook opens one volume (cryptdevice=), and uses
		// /crypto_keyfile.bin if it is there.
		if len(vols) > 0 {
			p.KeyPaths = append(p.KeyPaths, "crypto_keyfile.bin")
			p.KeyOf["crypto_keyfile.bin"] = vols[0].UUID
			p.Names = append(p.Names, named[vols[0].UUID])
		}
		if len(vols) > 1 {
			p.Notes = append(p.Notes, fmt.Sprintf("mkinitcpio's encrypt hook opens one volume; the OS unlocks the other %d itself", len(vols)-1))
		}
	default: // systemd-cryptsetup, and unknown initrds
		for _, v := range vols {
			name := named[v.UUID]
			if i, ok := entry(v); ok {
				e := in.Crypttab[i]
				name = e.Name
				if !e.keyless() {
					p.Notes = append(p.Notes, fmt.Sprintf("%s (%s): the OS's crypttab gives it the key file %s, which systemd-cryptsetup tries first", v.Path, e.Name, e.KeyFile))
				}
			}
			if !validName(name) {
				p.Notes = append(p.Notes, fmt.Sprintf("%s: its name %q cannot be a key file name", v.Path, name))
				continue
			}
			p.KeyPaths = append(p.KeyPaths, KeyDir+"/"+name+".key")
			p.KeyOf[KeyDir+"/"+name+".key"] = v.UUID
			p.Names = append(p.Names, name)
		}
		if in.Flavour == FlavourUnknown {
			p.Notes = append(p.Notes, "the key is put where systemd looks (/"+KeyDir+"); most systems find it there. If the OS asks for the passphrase anyway, type it there")
		}
	}
	sort.Strings(p.Names)
	sort.Strings(p.KeyPaths)
	return p
}

// Archive builds the newc cpio of the plan, each key file holding the key
// of its volume (keys: by UUID). The returned buffer holds the keys: zero
// it after use.
func (p Plan) Archive(keys map[string][]byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(4096 + len(p.KeyPaths)*(512+256))
	w := cpio.Newc.Writer(&b)
	var recs []cpio.Record
	dirs := map[string]bool{}
	dir := func(d string, mode uint64) {
		for _, x := range parents(d) {
			if !dirs[x] {
				dirs[x] = true
				recs = append(recs, cpio.Directory(x, mode))
			}
		}
	}
	var names []string
	for n := range p.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dir(pathDir(n), 0o755)
		recs = append(recs, cpio.StaticRecord(p.Files[n], cpio.Info{Name: n, Mode: 0o100644}))
	}
	for _, k := range p.KeyPaths {
		key, ok := keys[p.KeyOf[k]]
		if !ok {
			return nil, fmt.Errorf("no key for %s (volume %s)", k, p.KeyOf[k])
		}
		dir(pathDir(k), 0o700)
		recs = append(recs, cpio.StaticRecord(key, cpio.Info{Name: k, Mode: 0o100400}))
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return nil, err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func pathDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// parents lists d and the folders above it, outermost first.
func parents(d string) []string {
	if d == "" {
		return nil
	}
	var out []string
	for i := range d {
		if d[i] == '/' {
			out = append(out, d[:i])
		}
	}
	return append(out, d)
}

// KeyArchive builds a newc cpio holding key at KeyDir/NAME.key for each
// name (the systemd convention). The returned buffer holds the key: zero it
// after use.
func KeyArchive(names []string, key []byte) ([]byte, error) {
	p := Plan{Files: map[string][]byte{}, KeyOf: map[string]string{}}
	for _, n := range names {
		if !validName(n) {
			return nil, fmt.Errorf("volume name %q cannot be a key file name", n)
		}
		p.KeyPaths = append(p.KeyPaths, KeyDir+"/"+n+".key")
		p.KeyOf[KeyDir+"/"+n+".key"] = ""
	}
	return p.Archive(map[string][]byte{"": key})
}
