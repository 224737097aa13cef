package images

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Firmware is one firmware file for the image and where it came from.
type Firmware struct {
	File    string `json:"file"` // relative to /lib/firmware
	Package string `json:"package"`
	Version string `json:"version"`
	Size    int64  `json:"size"`
}

// NonFreeSources turns the machine's Debian apt sources (deb822 .sources
// files, or one-line sources.list) into a deb822 source of the same
// mirrors and suites with the non-free-firmware component only: the
// firmware comes from the build's own apt configuration, and the machine's
// is left as it is. Security suites are skipped (no firmware there).
func NonFreeSources(deb822, oneLine []byte) ([]byte, error) {
	var out bytes.Buffer
	add := func(uris, suites, signedBy string) {
		var keep []string
		for _, s := range strings.Fields(suites) {
			if !strings.Contains(s, "security") {
				keep = append(keep, s)
			}
		}
		if uris == "" || len(keep) == 0 {
			return
		}
		fmt.Fprintf(&out, "Types: deb\nURIs: %s\nSuites: %s\nComponents: non-free-firmware\n", uris, strings.Join(keep, " "))
		if signedBy != "" {
			fmt.Fprintf(&out, "Signed-By: %s\n", signedBy)
		}
		out.WriteString("\n")
	}
	for _, stanza := range strings.Split(string(deb822), "\n\n") {
		f := map[string]string{}
		for _, l := range strings.Split(stanza, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(strings.TrimSpace(l), "#") {
				f[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		if slices.Contains(strings.Fields(f["Types"]), "deb") && slices.Contains(strings.Fields(f["Components"]), "main") {
			add(f["URIs"], f["Suites"], f["Signed-By"])
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(oneLine))
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 4 && fl[0] == "deb" && !strings.HasPrefix(fl[1], "[") && strings.Contains(strings.Join(fl[3:], " "), "main") {
			add(fl[1], fl[2], "")
		}
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("no Debian source with the main component in the machine's apt sources")
	}
	return out.Bytes(), nil
}

// FetchFirmware downloads and unpacks the firmware packages into
// cache/firmware through an apt configuration of the build's own under
// cache/apt, once per package version, and returns each package's folder
// of /lib/firmware and version.
func FetchFirmware(cache string, packages []string) (map[string]string, map[string]string, error) {
	cache, err := filepath.Abs(cache) // apt reads Dir:: options from /
	if err != nil {
		return nil, nil, err
	}
	aptDir := filepath.Join(cache, "apt")
	for _, d := range []string{"parts", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(aptDir, d), 0o755); err != nil {
			return nil, nil, err
		}
	}
	deb822, _ := readGlob("/etc/apt/sources.list.d/*.sources")
	oneLine, _ := readGlob("/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list")
	src, err := NonFreeSources(deb822, oneLine)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(aptDir, "parts", "non-free-firmware.sources"), src, 0o644); err != nil {
		return nil, nil, err
	}
	opts := []string{"-o", "Dir::Etc::SourceList=/dev/null", "-o", "Dir::Etc::SourceParts=" + filepath.Join(aptDir, "parts"),
		"-o", "Dir::State::Lists=" + filepath.Join(aptDir, "lists"), "-o", "Dir::Cache=" + filepath.Join(aptDir, "cache"),
		"-o", "Debug::NoLocking=1"}
	versions := map[string]string{}
	dirs := map[string]string{}
	for pass := 0; pass < 2; pass++ {
		missing := false
		for _, p := range packages {
			out, err := exec.Command("apt-cache", append(opts, "show", "--no-all-versions", p)...).Output()
			v := ""
			for _, l := range strings.Split(string(out), "\n") {
				if s, ok := strings.CutPrefix(l, "Version: "); ok {
					v = s
				}
			}
			if err != nil || v == "" {
				missing = true
				break
			}
			versions[p] = v
		}
		if !missing {
			break
		}
		if pass == 1 {
			return nil, nil, fmt.Errorf("firmware packages %s not found in the non-free-firmware component", strings.Join(packages, ", "))
		}
		if b, err := exec.Command("apt-get", append(opts, "update", "-qq")...).CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("apt-get update (non-free-firmware): %w\n%s", err, b)
		}
	}
	dl := filepath.Join(cache, "deb")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return nil, nil, err
	}
	for _, p := range packages {
		v := versions[p]
		dir := filepath.Join(cache, "firmware", p+"_"+v)
		dirs[p] = filepath.Join(dir, "lib", "firmware")
		if _, err := os.Stat(dirs[p]); err == nil {
			continue
		}
		cmd := exec.Command("apt-get", append(opts, "download", p+"="+v)...)
		cmd.Dir = dl
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("apt-get download %s: %w\n%s", p, err, b)
		}
		debs, _ := filepath.Glob(filepath.Join(dl, p+"_"+strings.ReplaceAll(v, ":", "%3a")+"_*.deb"))
		if len(debs) == 0 {
			return nil, nil, fmt.Errorf("apt-get download %s left no .deb", p)
		}
		tmp := dir + ".tmp"
		_ = os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return nil, nil, err
		}
		if b, err := exec.Command("dpkg-deb", "-x", debs[len(debs)-1], tmp).CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("dpkg-deb -x %s: %w\n%s", p, err, b)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return nil, nil, err
		}
	}
	return dirs, versions, nil
}

func readGlob(patterns ...string) ([]byte, error) {
	var out []byte
	for _, pat := range patterns {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(append(out, b...), '\n', '\n')
		}
	}
	return out, nil
}

// StageFirmware copies the firmware files the modules may ask for into
// stage/lib/firmware, from the first package that has each, and returns
// what it copied and the files no package has (a driver that names
// firmware for chips the packages do not cover, or that can run without).
func StageFirmware(modDir string, files []string, stage string, pkgDirs, versions map[string]string, order []string) ([]Firmware, []string, error) {
	var got []Firmware
	var missing []string
	seen := map[string]bool{}
	for _, f := range files {
		ko, err := os.ReadFile(filepath.Join(modDir, f))
		if err != nil {
			return nil, nil, err
		}
		names, err := ModuleFirmware(ko)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, n := range names {
			if seen[n] || strings.HasPrefix(n, "../") || filepath.IsAbs(n) {
				continue
			}
			seen[n] = true
			found := false
			for _, p := range order {
				data, err := os.ReadFile(filepath.Join(pkgDirs[p], n))
				if err != nil {
					continue
				}
				dst := filepath.Join(stage, "lib", "firmware", n)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return nil, nil, err
				}
				if err := os.WriteFile(dst, data, 0o644); err != nil {
					return nil, nil, err
				}
				got = append(got, Firmware{File: n, Package: p, Version: versions[p], Size: int64(len(data))})
				found = true
				break
			}
			if !found {
				missing = append(missing, ModName(f)+": "+n)
			}
		}
	}
	return got, missing, nil
}
