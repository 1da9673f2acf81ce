package packager_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// npmPackage is one version of a package the test registry serves.
type npmPackage struct {
	name, version string
	deps          map[string]string
}

// newNPMRegistry serves pkgs as an npm registry on 127.0.0.1: packuments,
// /<name>/latest documents and tarballs built here. Like some private
// registries it serves no search endpoint.
func newNPMRegistry(t *testing.T, pkgs ...npmPackage) *httptest.Server {
	t.Helper()
	type entry struct {
		packument, latest []byte
		tarball           []byte
	}
	entries := map[string]*entry{}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, p := range pkgs {
		tgz := npmTarball(t, p)
		sha := sha1.Sum(tgz)
		sum512 := sha512.Sum512(tgz)
		file := p.name + "-" + p.version + ".tgz"
		version := map[string]any{
			"name":         p.name,
			"version":      p.version,
			"description":  "A test package called " + p.name + ".",
			"license":      "MIT",
			"author":       map[string]string{"name": "Test Author", "email": "author@example.com"},
			"homepage":     "https://example.com/" + p.name,
			"repository":   map[string]string{"type": "git", "url": "git+https://github.com/example/" + p.name + ".git"},
			"bugs":         map[string]string{"url": "https://github.com/example/" + p.name + "/issues"},
			"dependencies": p.deps,
			"dist": map[string]string{
				"tarball":   srv.URL + "/" + p.name + "/-/" + file,
				"shasum":    hex.EncodeToString(sha[:]),
				"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sum512[:]),
			},
		}
		latest, _ := json.Marshal(version)
		packument, _ := json.Marshal(map[string]any{
			"name":      p.name,
			"dist-tags": map[string]string{"latest": p.version},
			"versions":  map[string]any{p.version: version},
			"time":      map[string]string{p.version: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)},
		})
		entries[p.name] = &entry{packument: packument, latest: latest, tarball: tgz}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		path, err := url.PathUnescape(r.URL.EscapedPath())
		if err != nil {
			http.NotFound(w, r)
			return
		}
		parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
		e := entries[parts[0]]
		switch {
		case e == nil:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"Not found"}`)
		case len(parts) == 1:
			w.Header().Set("Content-Type", "application/json")
			w.Write(e.packument)
		case len(parts) == 2 && parts[1] == "latest":
			w.Header().Set("Content-Type", "application/json")
			w.Write(e.latest)
		case len(parts) == 3 && parts[1] == "-":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(e.tarball)
		default:
			http.NotFound(w, r)
		}
	})
	return srv
}

// npmTarball builds the .tgz of p: package/package.json and
// package/index.js.
func npmTarball(t *testing.T, p npmPackage) []byte {
	t.Helper()
	manifest, _ := json.MarshalIndent(map[string]any{
		"name": p.name, "version": p.version, "main": "index.js", "license": "MIT", "dependencies": p.deps,
	}, "", "  ")
	files := []struct {
		name string
		data []byte
	}{
		{"package/package.json", manifest},
		{"package/index.js", []byte("module.exports = " + fmt.Sprintf("%q", p.name) + ";\n")},
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// goModule is one version of a module in a test proxy.
type goModule struct {
	path, version string
	requires      map[string]string // path → version
	files         map[string]string // name → content, besides go.mod
}

func (m goModule) gomod() string {
	var b strings.Builder
	fmt.Fprintf(&b, "module %s\n\ngo 1.21\n", m.path)
	for path, version := range m.requires {
		fmt.Fprintf(&b, "\nrequire %s %s\n", path, version)
	}
	return b.String()
}

// writeGoProxy lays mods out as a module proxy in a directory (for
// GOPROXY=file://...) and returns the directory.
func writeGoProxy(t *testing.T, mods ...goModule) string {
	t.Helper()
	root := t.TempDir()
	for _, m := range mods {
		dir := filepath.Join(root, m.path, "@v")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		list, err := os.OpenFile(filepath.Join(dir, "list"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(list, m.version)
		list.Close()
		info, _ := json.Marshal(map[string]string{"Version": m.version, "Time": "2024-01-01T00:00:00Z"})
		writeFile(t, filepath.Join(dir, m.version+".info"), string(info))
		writeFile(t, filepath.Join(dir, m.version+".mod"), m.gomod())
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		prefix := m.path + "@" + m.version + "/"
		files := map[string]string{"go.mod": m.gomod()}
		for name, content := range m.files {
			files[name] = content
		}
		for name, content := range files {
			w, err := zw.Create(prefix + name)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(content))
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, m.version+".zip"), buf.String())
	}
	return root
}

// buildWheel writes a minimal pure-Python wheel of name and version into
// dir: the package, METADATA, WHEEL and RECORD.
func buildWheel(t *testing.T, dir, name, version string) {
	t.Helper()
	distInfo := name + "-" + version + ".dist-info/"
	files := []struct{ name, content string }{
		{name + "/__init__.py", "VALUE = 42\n"},
		{distInfo + "METADATA", "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\nSummary: A test wheel.\n"},
		{distInfo + "WHEEL", "Wheel-Version: 1.0\nGenerator: conman-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f.content))
		sum := sha256.Sum256([]byte(f.content))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.content))
	}
	fmt.Fprintf(&record, "%sRECORD,,\n", distInfo)
	w, err := zw.Create(distInfo + "RECORD")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(record.String()))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, name+"-"+version+"-py3-none-any.whl"), buf.String())
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
