// Package auth mints and verifies the daemon's access tokens: PASETO
// v2.public (Ed25519) tokens whose payload carries the claims below and
// whose footer carries the id of the signing key.
//
// The daemon holds public keys only (a compromised container cannot mint
// tokens for others); the platform, or `conman token` on a developer's
// machine, holds the secret key. Keys live in a directory as hex files,
// <kid>.pub and <kid>.key. A verifier accepts every public key in its
// directory, so keys can be rotated by adding the new one before the old one
// is removed; a token signed by a key the verifier has not seen makes it
// re-read the directory (at most once a second).
//
// Nothing in this package logs, and no error it returns contains a token or a
// key.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"aidanwoods.dev/go-paseto"
)

// Claims are what a token says about its holder.
type Claims struct {
	// UserID and UserName identify the person.
	UserID   uint32
	UserName string
	// WorkspaceID is the container the token is for; the daemon refuses a
	// token for another one.
	WorkspaceID string
	// ReadOnly tokens may read and follow but never mutate.
	ReadOnly bool
	// Roles are extra permissions ("debug", "admin").
	Roles []string
	// Expires is when the token stops being accepted.
	Expires time.Time
	// IssuedAt is when it was minted; TokenID is unique per token. Mint
	// fills both.
	IssuedAt time.Time
	TokenID  string
}

// payload is the JSON form of Claims inside the token.
type payload struct {
	UserID      uint32   `json:"uid"`
	UserName    string   `json:"name"`
	WorkspaceID string   `json:"ws"`
	Permission  string   `json:"perm"` // "rw" or "ro"
	Roles       []string `json:"roles,omitempty"`
	Expires     string   `json:"exp"`
	IssuedAt    string   `json:"iat"`
	TokenID     string   `json:"jti"`
}

// footer is the JSON form of the token's footer.
type footer struct {
	KeyID string `json:"kid"`
}

// Failure labels, counted by the daemon and usable with [Reason].
const (
	ReasonMissing        = "missing"
	ReasonMalformed      = "malformed"
	ReasonUnknownKey     = "unknown_key"
	ReasonBadSignature   = "bad_signature"
	ReasonExpired        = "expired"
	ReasonWrongWorkspace = "wrong_workspace"
	ReasonBadClaims      = "bad_claims"
)

// Error is a refused token. Its text never contains the token.
type Error struct {
	reason string
	text   string
}

func (e *Error) Error() string { return "token refused: " + e.text }

// Reason is the short label the failure is counted under.
func (e *Error) Reason() string { return e.reason }

func refuse(reason, text string) error { return &Error{reason: reason, text: text} }

// Reason returns the label of a verification failure ("" for nil, "invalid"
// for an error that is not an [*Error]).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.reason
	}
	return "invalid"
}

// Key files.
const (
	publicSuffix = ".pub"
	secretSuffix = ".key"
)

// GenerateKey writes a new Ed25519 key pair into dir (created 0700 when
// missing): <kid>.key (0600) and <kid>.pub (0644). It returns the key id,
// which sorts after every id generated before it.
func GenerateKey(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("keygen: %w", err)
	}
	var nonce [4]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("keygen: %w", err)
	}
	kid := time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(nonce[:])
	secret := paseto.NewV2AsymmetricSecretKey()
	if err := writeFileSync(filepath.Join(dir, kid+secretSuffix), []byte(secret.ExportHex()+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keygen: %w", err)
	}
	if err := writeFileSync(filepath.Join(dir, kid+publicSuffix), []byte(secret.Public().ExportHex()+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("keygen: %w", err)
	}
	return kid, nil
}

// writeFileSync creates path (it must not exist) with data, durably.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
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

// keyIDs lists the ids of the keys in dir with suffix, sorted (oldest
// first, for keys made by GenerateKey).
func keyIDs(dir, suffix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), suffix); ok && !e.IsDir() && validKeyID(id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// validKeyID accepts the ids GenerateKey makes and other plain names.
func validKeyID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// HasKeys reports whether dir holds at least one public key.
func HasKeys(dir string) bool {
	ids, err := keyIDs(dir, publicSuffix)
	return err == nil && len(ids) > 0
}

// Signer mints tokens with one secret key.
type Signer struct {
	kid    string
	secret paseto.V2AsymmetricSecretKey
	now    func() time.Time
}

// LoadSigner loads the secret key kid from dir, or the newest one when kid
// is empty.
func LoadSigner(dir, kid string) (*Signer, error) {
	if kid == "" {
		ids, err := keyIDs(dir, secretSuffix)
		if err != nil {
			return nil, fmt.Errorf("load signing key: %w", err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("load signing key: no secret key in %s (run conman keygen)", dir)
		}
		kid = ids[len(ids)-1]
	}
	if !validKeyID(kid) {
		return nil, fmt.Errorf("load signing key: bad key id %q", kid)
	}
	raw, err := os.ReadFile(filepath.Join(dir, kid+secretSuffix))
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	secret, err := paseto.NewV2AsymmetricSecretKeyFromHex(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("load signing key %s: not a hex Ed25519 secret key", kid)
	}
	return &Signer{kid: kid, secret: secret, now: time.Now}, nil
}

// KeyID is the id of the signer's key.
func (s *Signer) KeyID() string { return s.kid }

// Mint returns a signed token for c. A zero Expires means one hour from
// now; IssuedAt and TokenID are filled in.
func (s *Signer) Mint(c Claims) (string, error) {
	now := s.now()
	if c.Expires.IsZero() {
		c.Expires = now.Add(time.Hour)
	}
	if c.UserName == "" {
		return "", errors.New("mint: a user name is required")
	}
	if c.WorkspaceID == "" {
		return "", errors.New("mint: a workspace id is required")
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	p := payload{
		UserID:      c.UserID,
		UserName:    c.UserName,
		WorkspaceID: c.WorkspaceID,
		Permission:  "rw",
		Roles:       c.Roles,
		Expires:     c.Expires.UTC().Format(time.RFC3339),
		IssuedAt:    now.UTC().Format(time.RFC3339),
		TokenID:     hex.EncodeToString(jti[:]),
	}
	if c.ReadOnly {
		p.Permission = "ro"
	}
	body, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	foot, err := json.Marshal(footer{KeyID: s.kid})
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	tok, err := paseto.NewTokenFromClaimsJSON(body, foot)
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	return tok.V2Sign(s.secret), nil
}

// VerifierOptions configures a [Verifier].
type VerifierOptions struct {
	// KeysDir holds the trusted public keys (<kid>.pub, hex).
	KeysDir string
	// WorkspaceID is the only workspace accepted. Required.
	WorkspaceID string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Leeway tolerates clock skew on expiry (default 0).
	Leeway time.Duration
}

// Verifier checks tokens against the public keys of a directory.
type Verifier struct {
	opts   VerifierOptions
	parser paseto.Parser

	// mu guards the following.
	mu       sync.Mutex
	keys     map[string]paseto.V2AsymmetricPublicKey
	reloaded time.Time
}

// maxTokenBytes bounds what is parsed at all.
const maxTokenBytes = 8 << 10

// reloadEvery bounds how often an unknown key id re-reads the directory.
const reloadEvery = time.Second

// NewVerifier loads every public key of opts.KeysDir. It fails when there is
// none.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if opts.WorkspaceID == "" {
		return nil, errors.New("verifier: a workspace id is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{opts: opts, parser: paseto.NewParserWithoutExpiryCheck()}
	keys, err := loadPublicKeys(opts.KeysDir)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("verifier: no public key in %s", opts.KeysDir)
	}
	v.keys, v.reloaded = keys, opts.Now()
	return v, nil
}

func loadPublicKeys(dir string) (map[string]paseto.V2AsymmetricPublicKey, error) {
	ids, err := keyIDs(dir, publicSuffix)
	if err != nil {
		return nil, fmt.Errorf("load public keys: %w", err)
	}
	keys := make(map[string]paseto.V2AsymmetricPublicKey, len(ids))
	for _, id := range ids {
		raw, err := os.ReadFile(filepath.Join(dir, id+publicSuffix))
		if err != nil {
			return nil, fmt.Errorf("load public keys: %w", err)
		}
		key, err := paseto.NewV2AsymmetricPublicKeyFromHex(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil, fmt.Errorf("load public key %s: not a hex Ed25519 public key", id)
		}
		keys[id] = key
	}
	return keys, nil
}

// KeyIDs lists the ids of the trusted keys.
func (v *Verifier) KeyIDs() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// key returns the public key kid, re-reading the directory when kid is
// unknown and the last read is old enough.
func (v *Verifier) key(kid string) (paseto.V2AsymmetricPublicKey, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.keys[kid]; ok {
		return k, true
	}
	if now := v.opts.Now(); now.Sub(v.reloaded) >= reloadEvery {
		v.reloaded = now
		if keys, err := loadPublicKeys(v.opts.KeysDir); err == nil && len(keys) > 0 {
			v.keys = keys
		}
	}
	k, ok := v.keys[kid]
	return k, ok
}

// Verify checks the token's signature, expiry and workspace and returns its
// claims. Failures are [*Error]s labelled with a Reason*.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, refuse(ReasonMissing, "no token")
	}
	if len(token) > maxTokenBytes || !strings.HasPrefix(token, "v2.public.") {
		return Claims{}, refuse(ReasonMalformed, "not a v2.public token")
	}
	rawFooter, err := v.parser.UnsafeParseFooter(paseto.V2Public, token)
	if err != nil {
		return Claims{}, refuse(ReasonMalformed, "unreadable footer")
	}
	var foot footer
	if err := json.Unmarshal(rawFooter, &foot); err != nil || foot.KeyID == "" {
		return Claims{}, refuse(ReasonMalformed, "footer has no key id")
	}
	key, ok := v.key(foot.KeyID)
	if !ok {
		return Claims{}, refuse(ReasonUnknownKey, "signed by an unknown key")
	}
	tok, err := v.parser.ParseV2Public(key, token)
	if err != nil {
		return Claims{}, refuse(ReasonBadSignature, "signature does not verify")
	}
	var p payload
	if err := json.Unmarshal(tok.ClaimsJSON(), &p); err != nil {
		return Claims{}, refuse(ReasonBadClaims, "unreadable claims")
	}
	exp, err := time.Parse(time.RFC3339, p.Expires)
	if err != nil {
		return Claims{}, refuse(ReasonBadClaims, "no expiry")
	}
	if !v.opts.Now().Before(exp.Add(v.opts.Leeway)) {
		return Claims{}, refuse(ReasonExpired, "expired")
	}
	if subtle.ConstantTimeCompare([]byte(p.WorkspaceID), []byte(v.opts.WorkspaceID)) != 1 {
		return Claims{}, refuse(ReasonWrongWorkspace, "for another workspace")
	}
	if p.UserName == "" || (p.Permission != "rw" && p.Permission != "ro") {
		return Claims{}, refuse(ReasonBadClaims, "no user name or permission")
	}
	iat, _ := time.Parse(time.RFC3339, p.IssuedAt)
	return Claims{
		UserID:      p.UserID,
		UserName:    p.UserName,
		WorkspaceID: p.WorkspaceID,
		ReadOnly:    p.Permission == "ro",
		Roles:       p.Roles,
		Expires:     exp,
		IssuedAt:    iat,
		TokenID:     p.TokenID,
	}, nil
}
