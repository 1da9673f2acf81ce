package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// firstLoadBudget bounds what the first load of the page transfers,
// compressed: the page and every script and style sheet it loads at once
// (language modes come later, on demand).
const firstLoadBudget = 1536 << 10

func TestHandler(t *testing.T) {
	t.Parallel()
	script := strings.Repeat("console.log('conman');\n", 200)
	files := fstest.MapFS{
		"index.html":          {Data: []byte(`<!doctype html><script type="module" src="/assets/index-abc.js"></script>`)},
		"assets/index-abc.js": {Data: []byte(script)},
		"assets/tiny-abc.js":  {Data: []byte("1")},
	}
	h := newHandler(files)
	tests := []struct {
		name, method, path, acceptEncoding string
		wantStatus                         int
		wantType, wantCache, wantEncoding  string
		wantBody                           string
	}{
		{name: "page", method: "GET", path: "/", wantStatus: 200, wantType: "text/html; charset=utf-8", wantCache: pageCacheControl, wantBody: string(files["index.html"].Data)},
		{name: "page by name", method: "GET", path: "/index.html", wantStatus: 200, wantType: "text/html; charset=utf-8", wantCache: pageCacheControl},
		{name: "page head", method: "HEAD", path: "/", wantStatus: 200, wantType: "text/html; charset=utf-8", wantCache: pageCacheControl},
		{name: "asset gzip", method: "GET", path: "/assets/index-abc.js", acceptEncoding: "gzip, deflate, br", wantStatus: 200, wantType: "text/javascript; charset=utf-8", wantCache: assetCacheControl, wantEncoding: "gzip", wantBody: script},
		{name: "asset plain", method: "GET", path: "/assets/index-abc.js", wantStatus: 200, wantType: "text/javascript; charset=utf-8", wantCache: assetCacheControl, wantBody: script},
		{name: "gzip refused", method: "GET", path: "/assets/index-abc.js", acceptEncoding: "gzip;q=0, br", wantStatus: 200, wantCache: assetCacheControl, wantBody: script},
		{name: "too small to compress", method: "GET", path: "/assets/tiny-abc.js", acceptEncoding: "gzip", wantStatus: 200, wantBody: "1"},
		{name: "missing asset", method: "GET", path: "/assets/nope.js", wantStatus: 404},
		{name: "outside assets", method: "GET", path: "/ui.go", wantStatus: 404},
		{name: "climbing", method: "GET", path: "/assets/../../ui.go", wantStatus: 404},
		{name: "websocket path", method: "GET", path: "/wsv2", wantStatus: 404},
		{name: "post", method: "POST", path: "/", wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.acceptEncoding != "" {
				req.Header.Set("Accept-Encoding", tt.acceptEncoding)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				return
			}
			if tt.wantType != "" && res.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), tt.wantType)
			}
			if tt.wantCache != "" && res.Header.Get("Cache-Control") != tt.wantCache {
				t.Errorf("Cache-Control %q, want %q", res.Header.Get("Cache-Control"), tt.wantCache)
			}
			if got := res.Header.Get("Content-Encoding"); got != tt.wantEncoding {
				t.Errorf("Content-Encoding %q, want %q", got, tt.wantEncoding)
			}
			if res.Header.Get("ETag") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", res.Header)
			}
			body := rec.Body.Bytes()
			if tt.method == "HEAD" {
				if len(body) != 0 {
					t.Errorf("HEAD wrote %d bytes", len(body))
				}
				return
			}
			if tt.wantEncoding == "gzip" {
				body = gunzip(t, body)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestHandlerPageHeaders(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	h := rec.Result().Header
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(h.Get("Content-Security-Policy"), want) {
			t.Errorf("Content-Security-Policy %q lacks %q", h.Get("Content-Security-Policy"), want)
		}
	}
	if h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("Referrer-Policy %q", h.Get("Referrer-Policy"))
	}
}

func TestHandlerRevalidates(t *testing.T) {
	t.Parallel()
	h := Handler()
	for _, enc := range []string{"", "gzip"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Accept-Encoding", enc)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		etag := rec.Result().Header.Get("ETag")
		req = httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Accept-Encoding", enc)
		req.Header.Set("If-None-Match", etag)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("encoding %q: revalidation with %s: %d, %d bytes", enc, etag, rec.Code, rec.Body.Len())
		}
	}
}

// assetRefs are the assets a page loads at once.
var assetRefs = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)

// TestFirstLoadBudget serves the committed build as a browser's first load
// fetches it (gzip accepted) and checks the total against the budget.
func TestFirstLoadBudget(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	fetch := func(path string) (raw []byte, wire int) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		// A transport that leaves the body compressed, as it travelled.
		res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, res.StatusCode, err)
		}
		if res.Header.Get("Content-Encoding") == "gzip" {
			return gunzip(t, body), len(body)
		}
		return body, len(body)
	}
	page, total := fetch("/")
	refs := assetRefs.FindAllStringSubmatch(string(page), -1)
	if len(refs) == 0 {
		t.Fatalf("the page loads no assets:\n%s", page)
	}
	for _, ref := range refs {
		_, n := fetch(ref[1])
		t.Logf("%s: %d bytes compressed", ref[1], n)
		total += n
	}
	t.Logf("first load: %d bytes compressed (budget %d)", total, firstLoadBudget)
	if total > firstLoadBudget {
		t.Errorf("the first load transfers %d bytes compressed; the budget is %d", total, firstLoadBudget)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requireNode skips (or, with CONMAN_REQUIRE_NODE=1, fails) t when node or
// this directory's packages are missing, and returns node's path.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("node_modules", "vite", "package.json"))
	}
	if err != nil {
		msg := "the UI's Node packages are not installed (run `npm ci` in web/ui, or ./scripts/setup.sh): " + err.Error()
		if os.Getenv("CONMAN_REQUIRE_NODE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

func runNode(t *testing.T, node string, args ...string) {
	t.Helper()
	cmd := exec.Command(node, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "CI=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestSources type-checks the TypeScript sources, checks their formatting
// (npm run format fixes it) and runs their unit tests (the OT client
// against a model of the daemon, and the conversions between code points
// and UTF-16 offsets).
func TestSources(t *testing.T) {
	node := requireNode(t)
	t.Run("typecheck", func(t *testing.T) {
		runNode(t, node, filepath.Join("node_modules", "typescript", "bin", "tsc"), "--noEmit", "-p", ".")
	})
	t.Run("format", func(t *testing.T) {
		runNode(t, node, filepath.Join("node_modules", "prettier", "bin", "prettier.cjs"), "--check", "src", "test", "vite.config.ts")
	})
	t.Run("unit", func(t *testing.T) {
		runNode(t, node, filepath.Join("node_modules", "vitest", "vitest.mjs"), "run", "--reporter=dot")
	})
}

// TestBuildIsCurrent builds the sources into a temporary directory and
// fails when the result differs from the committed dist/ (the build is
// reproducible, so any difference means dist/ was not rebuilt).
func TestBuildIsCurrent(t *testing.T) {
	node := requireNode(t)
	out := t.TempDir()
	runNode(t, node, filepath.Join("node_modules", "vite", "bin", "vite.js"), "build", "--outDir", out, "--emptyOutDir", "--logLevel", "warn")
	want := readTree(t, os.DirFS(out))
	got := readTree(t, os.DirFS("dist"))
	var diffs []string
	for name, data := range want {
		if old, ok := got[name]; !ok {
			diffs = append(diffs, "missing from dist/: "+name)
		} else if !bytes.Equal(old, data) {
			diffs = append(diffs, "differs: "+name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, "not built from the sources: "+name)
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("dist/ does not match the sources; run `npm ci && npm run build` in web/ui:\n%s", strings.Join(diffs, "\n"))
	}
}

func readTree(t *testing.T, fsys fs.FS) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		files[p] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
