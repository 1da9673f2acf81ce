package meta

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Store is a durable key-value store kept as one file per key in a
// directory. A write or an append builds the key's new value in a
// temporary file, fsyncs it, renames it over the key's file and fsyncs the
// directory, so after a crash a key holds either its old value or its new
// one, never a torn mix; a value is durable once the call returns.
//
// Store is safe for concurrent use: reads run freely (a rename is atomic),
// writes and appends take turns.
type Store struct {
	dir      string
	maxValue int
	maxKeys  int

	// mu guards the following and serialises every change.
	mu   sync.Mutex
	keys int // files in dir
}

// tmpPrefix starts the names of temporary files; no key starts with a dot.
const tmpPrefix = ".tmp-"

// OpenStore opens (creating it) the store in dir, removing temporary files
// a crash left behind.
func OpenStore(dir string, maxValue, maxKeys int) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("meta store: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("meta store: %w", err)
	}
	s := &Store{dir: dir, maxValue: maxValue, maxKeys: maxKeys}
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), tmpPrefix):
			os.Remove(filepath.Join(dir, e.Name()))
		case e.Type().IsRegular() && ValidKey(e.Name()) == nil:
			s.keys++
		}
	}
	return s, nil
}

// MaxKeyBytes bounds a key.
const MaxKeyBytes = 128

// Errors clients see.
var (
	ErrInvalidKey = errors.New("invalid key")
	ErrTooLarge   = errors.New("value too large")
	ErrTooMany    = errors.New("too many keys")
)

// ValidKey checks a key: 1 to MaxKeyBytes bytes of ASCII letters, digits,
// '.', '_', '-' and ':', starting with a letter or a digit. Keys are file
// names, so nothing else is allowed (no '/', no "..", no dot files).
func ValidKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyBytes)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("%w %q: must start with a letter or a digit", ErrInvalidKey, key)
		}
		if !alnum && c != '.' && c != '_' && c != '-' && c != ':' {
			return fmt.Errorf("%w %q: only letters, digits, '.', '_', '-' and ':' are allowed", ErrInvalidKey, key)
		}
	}
	return nil
}

// Read returns key's value and whether it exists.
func (s *Store) Read(key string) ([]byte, bool, error) {
	if err := ValidKey(key); err != nil {
		return nil, false, err
	}
	data, err := os.ReadFile(filepath.Join(s.dir, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", key, cause(err))
	}
	return data, true, nil
}

// Write sets key to data.
func (s *Store) Write(key string, data []byte) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if len(data) > s.maxValue {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), s.maxValue)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replaceLocked(key, data)
}

// Append adds data to the end of key's value (an absent key is empty), as
// one atomic change.
func (s *Store) Append(key string, data []byte) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := os.ReadFile(filepath.Join(s.dir, key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("append %s: %w", key, cause(err))
	}
	if n := len(old) + len(data); n > s.maxValue {
		return fmt.Errorf("%w: the value would be %d bytes, at most %d", ErrTooLarge, n, s.maxValue)
	}
	return s.replaceLocked(key, append(old, data...))
}

// replaceLocked makes data key's value durably. s.mu must be held.
func (s *Store) replaceLocked(key string, data []byte) error {
	path := filepath.Join(s.dir, key)
	_, err := os.Lstat(path)
	exists := err == nil
	if !exists && s.keys >= s.maxKeys {
		return fmt.Errorf("%w: at most %d", ErrTooMany, s.maxKeys)
	}
	var b [8]byte
	rand.Read(b[:])
	tmp := filepath.Join(s.dir, tmpPrefix+hex.EncodeToString(b[:]))
	if err := writeSync(tmp, data); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", key, cause(err))
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", key, cause(err))
	}
	if !exists {
		s.keys++
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("write %s: %w", key, cause(err))
	}
	return nil
}

// cause strips the file names from err: the store's paths are the
// daemon's business, not its clients'.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func writeSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
