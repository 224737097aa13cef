package httpboot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Image names the files of the RAM image served under /images/.
type Image struct {
	// Loaders are first-stage files (in LoaderDir) also served under
	// /loaders/ for UEFI HTTP boot, which fetches its NBP over HTTP.
	Loaders   []string
	LoaderDir string // folder of the loaders (default Dir/tftp, as TFTP serves them)
	Dir       string // folder of the built image
	Kernel    string // file name of the kernel in Dir
	Initramfs string // file name of the initramfs in Dir
	Cmdline   string // kernel command line, without initrd= (added here)
}

// TokenStore keeps one-time boot tokens (as hashes); sqlite.DB is one.
// They are redeemed by the agent API's check-in (pxe/agent/agentserver).
type TokenStore interface {
	IssueToken(ctx context.Context, b store.Binding, ttl time.Duration) (string, error)
	PeekToken(ctx context.Context, tok string) (store.Binding, error)
}

// Server is the boot listener's handler.
type Server struct {
	BaseURL string // how hosts reach this listener, e.g. http://10.77.0.1:8080
	// AgentURL and AgentKey go into each boot's agent archive: where the
	// agent API listens (https://10.77.0.1:8443) and the key the agent
	// pins for it (agenttls.Keys.PublicKey).
	AgentURL, AgentKey string
	Image              Image
	Inventory          store.Inventory
	Steps              *store.Steps
	Tokens             TokenStore
	// StartBoots: a script fetch begins a boot (when the site's DHCP, not
	// ours, sends hosts here, no DISCOVER does).
	StartBoots bool
	Log        *slog.Logger
	TokenTTL   time.Duration

	root    *os.Root
	loaders *os.Root
	refused refusals
}

// Handler opens the image folder and returns the routes.
func (s *Server) Handler() (http.Handler, error) {
	if !strings.HasPrefix(s.AgentURL, "https://") || s.AgentKey == "" {
		return nil, fmt.Errorf("boot listener: the agent API's https URL and key are required (each agent archive carries them)")
	}
	root, err := os.OpenRoot(s.Image.Dir)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w (run 'make image' first)", err)
	}
	for _, f := range []string{s.Image.Kernel, s.Image.Initramfs} {
		if _, err := root.Stat(f); err != nil {
			root.Close()
			return nil, fmt.Errorf("image: %w (run 'make image' first)", err)
		}
	}
	s.root = root
	dir := s.Image.LoaderDir
	if dir == "" {
		dir = filepath.Join(s.Image.Dir, "tftp")
	}
	// The loaders are checked here too: a UEFI HTTP boot client that
	// gets a 404 falls through to its next boot option, with no message
	// anywhere on the server.
	if len(s.Image.Loaders) > 0 {
		if s.loaders, err = os.OpenRoot(dir); err != nil {
			root.Close()
			return nil, fmt.Errorf("loader folder: %w (run 'make image' first)", err)
		}
		for _, f := range s.Image.Loaders {
			if _, err := s.loaders.Stat(f); err != nil {
				root.Close()
				s.loaders.Close()
				return nil, fmt.Errorf("loader for UEFI HTTP boot: %w (run 'make image' first)", err)
			}
		}
	}
	if s.TokenTTL == 0 {
		s.TokenTTL = 10 * time.Minute
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot/{file}", s.script)
	mux.HandleFunc("GET /boot/agent/{file}", s.agentArchive)
	mux.HandleFunc("GET /images/{file}", s.image)
	mux.HandleFunc("GET /loaders/{file}", s.loader)
	return mux, nil
}

func peerIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

var scriptTmpl = template.Must(template.New("ipxe").Parse(`#!ipxe
echo lifeboat: {{.Host}} boot {{.Boot}}: loading the unlock environment
kernel --name {{.Kernel}} {{.Base}}/images/{{.Kernel}} {{.Cmdline}} initrd={{.Initramfs}} initrd=agent.cpio || goto failed
initrd --name {{.Initramfs}} {{.Base}}/images/{{.Initramfs}} || goto failed
initrd --name agent.cpio {{.Base}}/boot/agent/{{.Token}}.cpio || goto failed
boot || goto failed
:failed
echo lifeboat: boot failed; trying again in 10 seconds
sleep 10
reboot
`))

// ScriptData fills the iPXE script.
type ScriptData struct {
	Host, Boot, Base, Kernel, Initramfs, Cmdline, Token string
}

// RenderScript renders the per-boot iPXE script.
func RenderScript(d ScriptData) ([]byte, error) {
	var b bytes.Buffer
	if err := scriptTmpl.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// script serves /boot/MAC.ipxe. Only the host holding the reservation may
// fetch its script, so that no other machine on the segment can mint tokens
// for it.
func (s *Server) script(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	macStr, ok := strings.CutSuffix(file, ".ipxe")
	mac, err := net.ParseMAC(macStr)
	if !ok || err != nil {
		http.NotFound(w, r)
		return
	}
	if s.refused.limited(peerIP(r), time.Now()) {
		http.Error(w, "too many refused requests from this address; wait a minute", http.StatusTooManyRequests)
		return
	}
	h, ok := s.Inventory.Lookup(mac)
	// The reservation, or the first-stage address of a host on a VLAN
	// (dhcp.FirstStageInventory).
	at, atOK := s.Inventory.LookupIP(peerIP(r))
	if !ok || !atOK || at.Name != h.Name {
		s.refused.note(s.Log, peerIP(r), time.Now(), "script refused: not the host's reserved address (logged once a minute per address)", "mac", mac.String())
		http.NotFound(w, r)
		return
	}
	boot, ok := s.Steps.Current(h.MAC)
	if s.StartBoots {
		// No DHCP of ours saw this boot begin: the script fetch is its
		// first sign (a re-fetch after the script stage is a reboot).
		var err error
		if boot, _, err = s.Steps.Begin(r.Context(), h.MAC, h.Name, store.ClientIPXE, store.FirmwareIPXE,
			audit.Event{Code: audit.BootStart, Actor: "system", Details: map[string]string{"firmware": string(store.FirmwareIPXE)}}); err != nil {
			http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
			return
		}
		ok = boot != nil
	}
	if !ok {
		http.Error(w, "no DHCP exchange seen for this host; boot it again", http.StatusConflict)
		return
	}
	log := s.Log.With("mac", h.MAC, "host", h.Name, "boot", boot.ID)
	if h.Mode == store.ModeDisk {
		// No token, no image: iPXE exits and the firmware goes on to
		// the next boot device, the local disk.
		if err := s.Steps.Step(r.Context(), audit.Event{Code: audit.ScriptFetch, MAC: h.MAC, Host: h.Name, Boot: boot.ID, Actor: "system",
			Details: map[string]string{"mode": string(store.ModeDisk)}}, store.StageScript); err != nil {
			http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "#!ipxe\necho lifeboat: %s is in disk mode: booting from its local disk\nexit\n", h.Name)
		log.Info("served disk-mode script")
		return
	}
	tok, err := s.Tokens.IssueToken(r.Context(), store.Binding{MAC: h.MAC, Host: h.Name, Boot: boot.ID}, s.TokenTTL)
	if errors.Is(err, store.ErrTokenIssued) {
		// One token per boot: the host's own iPXE fetches its script
		// once, and reboots (a new DHCP exchange, a new boot) if it fails.
		s.refused.note(log, peerIP(r), time.Now(), "script refused: this boot's token was issued already")
		http.Error(w, "this boot's script was served already; a new boot begins with DHCP", http.StatusConflict)
		return
	}
	if err != nil {
		log.Error("script refused: token store failed", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	body, err := RenderScript(ScriptData{Host: h.Name, Boot: boot.ID, Base: s.BaseURL,
		Kernel: s.Image.Kernel, Initramfs: s.Image.Initramfs, Cmdline: s.Image.Cmdline, Token: tok})
	if err != nil {
		log.Error("script render", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := s.Steps.Step(r.Context(), audit.Event{Code: audit.ScriptFetch, MAC: h.MAC, Host: h.Name, Boot: boot.ID, Actor: "system"}, store.StageScript); err != nil {
		log.Error("script refused: event log failed", "err", err)
		http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
	log.Info("served iPXE script")
}

// AgentArchive builds the per-boot cpio holding the agent's boot
// parameters.
func AgentArchive(p agentapi.BootParams) ([]byte, error) {
	js, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	cw := cpio.Newc.Writer(&b)
	recs := []cpio.Record{
		cpio.Directory("etc", 0o755),
		cpio.Directory("etc/lifeboat", 0o700),
		cpio.StaticRecord(js, cpio.Info{Name: agentapi.BootFile, Mode: 0o100600}),
	}
	if err := cpio.WriteRecordsAndDirs(cw, recs); err != nil {
		return nil, err
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (s *Server) agentArchive(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutSuffix(r.PathValue("file"), ".cpio")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if s.refused.limited(peerIP(r), time.Now()) {
		http.Error(w, "too many refused requests from this address; wait a minute", http.StatusTooManyRequests)
		return
	}
	b, err := s.Tokens.PeekToken(r.Context(), tok)
	if err != nil {
		s.refused.note(s.Log, peerIP(r), time.Now(), "agent archive refused (logged once a minute per address)", "err", err.Error())
		http.NotFound(w, r)
		return
	}
	p := agentapi.BootParams{Server: s.AgentURL, ServerKey: s.AgentKey, Boot: b.Boot, MAC: b.MAC, Host: b.Host, Token: tok}
	if mac, err := net.ParseMAC(b.MAC); err == nil {
		if h, ok := s.Inventory.Lookup(mac); ok {
			p.VLAN = h.VLAN
		}
	}
	data, err := AgentArchive(p)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := s.Steps.Record(r.Context(), audit.Event{Code: audit.ImageFetch, MAC: b.MAC, Host: b.Host, Boot: b.Boot, Actor: "system",
		Details: map[string]string{"file": "agent.cpio", "bytes": fmt.Sprint(len(data))}}); err != nil {
		http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(data)
}

func (s *Server) image(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	var stage store.Stage
	switch name {
	case s.Image.Kernel:
		stage = store.StageKernel
	case s.Image.Initramfs:
		stage = store.StageInitrd
	default:
		http.NotFound(w, r)
		return
	}
	f, err := s.root.Open(name)
	if err != nil {
		http.Error(w, "image missing on server", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "image missing on server", http.StatusInternalServerError)
		return
	}
	h, known := s.Inventory.LookupIP(peerIP(r))
	var boot *store.Boot
	if known {
		boot, _ = s.Steps.Current(h.MAC)
	}
	if boot != nil {
		if err := s.Steps.Step(r.Context(), audit.Event{Code: audit.ImageFetch, MAC: h.MAC, Host: h.Name, Boot: boot.ID, Actor: "system",
			Details: map[string]string{"file": name, "bytes": fmt.Sprint(fi.Size())}}, stage); err != nil {
			http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// loader serves a first-stage loader to UEFI HTTP boot clients.
func (s *Server) loader(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !slices.Contains(s.Image.Loaders, name) {
		http.NotFound(w, r)
		return
	}
	f, err := s.loaders.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	// Firmware asks with HEAD for the size first: only the GET is a fetch.
	if h, ok := s.Inventory.LookupIP(peerIP(r)); ok && r.Method == http.MethodGet {
		if b, ok := s.Steps.Current(h.MAC); ok {
			if err := s.Steps.Step(r.Context(), audit.Event{Code: audit.FirstStageFetch, MAC: h.MAC, Host: h.Name, Boot: b.ID, Actor: "system",
				Details: map[string]string{"file": name, "bytes": fmt.Sprint(fi.Size()), "via": "http"}}, store.StageFirstStage); err != nil {
				http.Error(w, "event log unavailable", http.StatusServiceUnavailable)
				return
			}
		}
	}
	w.Header().Set("Content-Type", "application/efi")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}
