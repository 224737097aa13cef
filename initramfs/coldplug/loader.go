package coldplug

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Loader loads modules through Probe, each once, softdeps first.
type Loader struct {
	Index *Index
	// Probe loads one module with its modules.dep dependencies
	// (kmodule's Prober in the image).
	Probe func(module string) error
	Log   *slog.Logger

	mu   sync.Mutex
	done map[string]error
	busy atomic.Int32 // loads in progress
}

// ErrNoModule is a module the image does not carry.
var ErrNoModule = errors.New("not in this image")

// Load loads a module and what its softdeps name, and returns the
// module's own error; a softdep that fails is logged, not fatal (modprobe
// does the same).
func (l *Loader) Load(module string) error {
	l.busy.Add(1)
	defer l.busy.Add(-1)
	return l.load(Name(module), 0)
}

func (l *Loader) load(m string, depth int) error {
	l.mu.Lock()
	if l.done == nil {
		l.done = map[string]error{}
	}
	if err, ok := l.done[m]; ok {
		l.mu.Unlock()
		return err
	}
	l.done[m] = nil // a softdep cycle ends here
	l.mu.Unlock()
	sd := l.Index.Softdeps(m)
	if depth < 4 {
		for _, p := range l.resolve(sd.Pre) {
			if err := l.load(p, depth+1); err != nil && l.Log != nil {
				l.Log.Debug("softdep not loaded", "module", m, "pre", p, "err", err)
			}
		}
	}
	err := l.Probe(m)
	l.mu.Lock()
	l.done[m] = err
	l.mu.Unlock()
	if depth < 4 {
		for _, p := range l.resolve(sd.Post) {
			_ = l.load(p, depth+1)
		}
	}
	return err
}

// resolve turns softdep names into modules: like modprobe, a softdep may
// name an alias ("crypto-crc32c", "crct10dif"), which means every module
// that provides it.
func (l *Loader) resolve(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, l.Index.Resolve(n)...)
	}
	return out
}

func (l *Loader) known(m string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.done[m]
	return ok
}

// Device is a device in sysfs that has a modalias.
type Device struct {
	Path     string // its folder under /sys/devices
	Modalias string
	Driver   string // the bound driver's name, "" for none
}

// Devices lists every device under root (/sys/devices) with a modalias.
// It does not follow links, so sysfs's loops do not trap it.
func Devices(root string) ([]Device, error) {
	var out []Device
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // a device that went away, or a file we may not read
		}
		if d.IsDir() || d.Name() != "modalias" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		dev := filepath.Dir(p)
		m := strings.TrimSpace(string(b))
		if m == "" {
			return nil
		}
		driver := ""
		if t, err := os.Readlink(filepath.Join(dev, "driver")); err == nil {
			driver = filepath.Base(t)
		}
		out = append(out, Device{Path: dev, Modalias: m, Driver: driver})
		return nil
	})
	return out, err
}

// Coldplug loads the modules for every device under root without a driver
// that want accepts, again until a pass loads nothing new (a driver's
// devices appear under it: virtio's behind virtio_pci, disks behind an
// HBA), at most passes times. It returns the modules it loaded and the
// errors of those that did not load.
func (l *Loader) Coldplug(root string, want func(modalias string) bool, passes int) (loaded []string, errs []error) {
	tried := map[string]bool{}
	for range passes {
		devs, err := Devices(root)
		if err != nil {
			return loaded, append(errs, err)
		}
		var next []string
		for _, d := range devs {
			if d.Driver != "" || (want != nil && !want(d.Modalias)) {
				continue
			}
			for _, m := range l.Index.Match(d.Modalias) {
				if !tried[m] && !l.known(m) {
					tried[m] = true
					next = append(next, m)
				}
			}
		}
		if len(next) == 0 {
			return loaded, errs
		}
		for _, m := range next {
			if err := l.Load(m); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m, err))
				continue
			}
			loaded = append(loaded, m)
		}
	}
	return loaded, errs
}
