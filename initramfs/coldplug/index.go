package coldplug

import (
	"bufio"
	"bytes"
	"path"
	"strings"
)

// Index is a modules.alias and modules.softdep pair.
type Index struct {
	byBus   map[string][]alias // the part of the pattern before ':' → its aliases, in file order
	other   []alias            // patterns whose bus part is itself a pattern
	names   map[string]bool    // modules the index names
	softdep map[string]Softdep
}

type alias struct{ pattern, module string }

// Softdep is what a module wants loaded before and after itself.
type Softdep struct{ Pre, Post []string }

// Name normalises a module name: "dm-crypt" → "dm_crypt".
func Name(s string) string { return strings.ReplaceAll(s, "-", "_") }

// ParseIndex reads modules.alias and modules.softdep. Lines it does not
// understand are skipped: the files are the kernel package's own.
func ParseIndex(aliases, softdeps []byte) *Index {
	ix := &Index{byBus: map[string][]alias{}, names: map[string]bool{}, softdep: map[string]Softdep{}}
	sc := bufio.NewScanner(bytes.NewReader(aliases))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		if _, err := path.Match(f[1], ""); err != nil {
			continue // a pattern path.Match cannot read
		}
		a := alias{pattern: f[1], module: Name(f[2])}
		ix.names[a.module] = true
		bus, _, ok := strings.Cut(a.pattern, ":")
		if !ok || strings.ContainsAny(bus, "*?[\\") {
			ix.other = append(ix.other, a)
			continue
		}
		ix.byBus[bus] = append(ix.byBus[bus], a)
	}
	sc = bufio.NewScanner(bytes.NewReader(softdeps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "softdep" {
			continue
		}
		var d Softdep
		var into *[]string
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				into = &d.Pre
			case "post:":
				into = &d.Post
			default:
				if into != nil {
					*into = append(*into, w) // a module or an alias: Loader resolves it
				}
			}
		}
		ix.softdep[Name(f[1])] = d
	}
	return ix
}

// Match returns the modules whose aliases match a device's modalias, in
// the index's order, each once.
func (ix *Index) Match(modalias string) []string {
	bus, _, _ := strings.Cut(modalias, ":")
	var out []string
	seen := map[string]bool{}
	try := func(as []alias) {
		for _, a := range as {
			if seen[a.module] {
				continue
			}
			if ok, _ := path.Match(a.pattern, modalias); ok {
				seen[a.module] = true
				out = append(out, a.module)
			}
		}
	}
	try(ix.byBus[bus])
	try(ix.other)
	return out
}

// Resolve turns what the kernel's request_module asks for (a module name,
// or an alias such as "crypto-xts(aes)", "fs-ext4", "net-pf-38") into
// modules: a known module's own name first.
func (ix *Index) Resolve(name string) []string {
	if ix.names[Name(name)] {
		return []string{Name(name)}
	}
	if m := ix.Match(name); len(m) > 0 {
		return m
	}
	return []string{Name(name)} // a module with no aliases: modules.dep knows it or nothing does
}

// Softdeps returns what module wants around itself.
func (ix *Index) Softdeps(module string) Softdep { return ix.softdep[Name(module)] }

// NetFirst says whether a device is wanted before SSH: a network
// controller (PCI class 02), the virtio transport every virtio device sits
// on (PCI vendor 1af4), and virtio's NIC (1) and entropy source (4), which
// the SSH host key waits for on machines without RDRAND.
func NetFirst(modalias string) bool {
	switch {
	case strings.HasPrefix(modalias, "pci:"):
		return strings.Contains(modalias, "bc02sc") || strings.HasPrefix(modalias, "pci:v00001AF4")
	case strings.HasPrefix(modalias, "virtio:"):
		return strings.HasPrefix(modalias, "virtio:d00000001v") || strings.HasPrefix(modalias, "virtio:d00000004v")
	}
	return false
}

// Claimable says whether a PCI device of a class is one a driver should
// have claimed: not the bridges, display adapters (the console uses the
// firmware's framebuffer), SMBus and system peripherals every board has.
func Claimable(class string) bool {
	if len(class) < 4 {
		return false
	}
	switch class[:2] {
	case "03", "05", "06", "08", "0b", "11", "ff":
		return false
	}
	return class[:4] != "0c05"
}

// PCIModalias splits a PCI modalias ("pci:v000015B3d00001017sv...bc02sc00i00")
// into vendor, device and class (base class and subclass), each four
// lower-case hex digits; ok is false for anything else.
func PCIModalias(m string) (vendor, device, class string, ok bool) {
	if len(m) < 22 || !strings.HasPrefix(m, "pci:v") || m[13] != 'd' {
		return "", "", "", false
	}
	vendor, device = strings.ToLower(m[9:13]), strings.ToLower(m[18:22])
	i := strings.Index(m, "bc")
	if i < 0 || len(m) < i+8 || m[i+4:i+6] != "sc" {
		return "", "", "", false
	}
	class = strings.ToLower(m[i+2:i+4] + m[i+6:i+8])
	if !hex4(vendor) || !hex4(device) || !hex4(class) {
		return "", "", "", false
	}
	return vendor, device, class, true
}

func hex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
