// Package ui is the browser IDE the daemon serves at /: the page and its
// assets, built from the TypeScript sources beside this file into dist/
// (committed, so building the daemon needs no Node) and embedded in the
// binary.
//
// `npm ci && npm run build` in this directory regenerates dist/; the
// build is reproducible, and a test fails when the committed dist/ does
// not match the sources.
//
// The handler serves the files as they are, gzip-compressed for clients
// that accept it (compressed once, on first use), with long-lived caching
// for the content-hashed assets and revalidation for the page itself. It
// knows nothing of the daemon: the page finds the websocket on its own
// host.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed dist
var dist embed.FS

// Cache lifetimes: hashed assets never change under their name; the page
// is checked every time (its ETag makes that cheap).
const (
	assetCacheControl = "public, max-age=31536000, immutable"
	pageCacheControl  = "no-cache"
)

// contentSecurityPolicy allows the page only its own scripts and its own
// host (the websocket included). Styles may be inline: the editor adds
// its own style sheets at run time.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// minGzipSize is the smallest file worth compressing.
const minGzipSize = 1024

// Handler serves the IDE: GET / is the page, GET /assets/… its assets;
// anything else is 404.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("ui: " + err.Error()) // the embed pattern guarantees dist/
	}
	return newHandler(sub)
}

// handler serves the files of one fs.FS.
type handler struct {
	files fs.FS
	// entries has one entry per file, made up front and never changed:
	// a name not in it is 404 without touching the FS. Each file is read
	// and compressed on first use, under its entry's once, so a large file
	// being compressed holds up no other.
	entries map[string]*entry
}

// entry is a file of the cache, loaded once.
type entry struct {
	once  sync.Once
	asset *asset
	err   error
}

// asset is one file, ready to serve.
type asset struct {
	raw         []byte
	gzipped     []byte // nil when not worth compressing
	etag        string
	contentType string
}

func newHandler(files fs.FS) *handler {
	h := &handler{files: files, entries: make(map[string]*entry)}
	fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			h.entries[name] = &entry{}
		}
		return nil
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	page := name == "" || name == "index.html"
	if page {
		name = "index.html"
	} else if !strings.HasPrefix(name, "assets/") {
		http.NotFound(w, r)
		return
	}
	a, err := h.load(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	// The compressed form is another representation: it gets its own tag.
	body, etag := a.raw, a.etag
	gzipped := a.gzipped != nil && acceptsGzip(r.Header.Get("Accept-Encoding"))
	if gzipped {
		body, etag = a.gzipped, strings.TrimSuffix(a.etag, `"`)+`-gz"`
	}
	header := w.Header()
	header.Set("Content-Type", a.contentType)
	header.Set("ETag", etag)
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Referrer-Policy", "no-referrer")
	if page {
		header.Set("Cache-Control", pageCacheControl)
		header.Set("Content-Security-Policy", contentSecurityPolicy)
		header.Set("X-Frame-Options", "DENY")
	} else {
		header.Set("Cache-Control", assetCacheControl)
	}
	if a.gzipped != nil {
		header.Add("Vary", "Accept-Encoding")
	}
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if gzipped {
		header.Set("Content-Encoding", "gzip")
	}
	header.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

// load returns the file name, read and compressed on first use.
func (h *handler) load(name string) (*asset, error) {
	e := h.entries[name]
	if e == nil {
		return nil, fs.ErrNotExist
	}
	e.once.Do(func() { e.asset, e.err = readAsset(h.files, name) })
	return e.asset, e.err
}

// readAsset reads name and compresses it when that is worth it.
func readAsset(files fs.FS, name string) (*asset, error) {
	raw, err := fs.ReadFile(files, name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	a := &asset{raw: raw, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: contentType(name)}
	if len(raw) >= minGzipSize && compressible(a.contentType) {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(raw)
		zw.Close()
		if buf.Len() < len(raw) {
			a.gzipped = buf.Bytes()
		}
	}
	return a, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") || strings.Contains(contentType, "json") ||
		strings.Contains(contentType, "svg") || strings.Contains(contentType, "wasm")
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(coding) != "*" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// etagMatches reports whether an If-None-Match header names etag.
func etagMatches(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == etag || part == "*" {
			return true
		}
	}
	return false
}
