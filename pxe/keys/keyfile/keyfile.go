package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Load returns the contents of the key file at path, making it with
// generate if it does not exist. what names the key in errors.
func Load(path, what string, generate func() ([]byte, error)) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return create(path, what, generate)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s: mode %v lets others read it; chmod 600 %s", what, path, fi.Mode().Perm(), path)
	}
	return data, nil
}

func create(path, what string, generate func() ([]byte, error)) ([]byte, error) {
	data, err := generate()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// O_EXCL: two servers starting at once do not both write a key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return data, nil
}
