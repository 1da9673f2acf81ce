package auth

import (
	"strings"
	"testing"
	"time"
)

func newPair(t *testing.T) (dir string, s *Signer) {
	t.Helper()
	dir = t.TempDir()
	if _, err := GenerateKey(dir); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return dir, s
}

func TestRoundTripAndExpiry(t *testing.T) {
	dir, signer := newPair(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	signer.now = func() time.Time { return now }
	tok, err := signer.Mint(Claims{UserID: 3, UserName: "ada", WorkspaceID: "ws", ReadOnly: true, Roles: []string{"debug"}, Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	v, err := NewVerifier(VerifierOptions{KeysDir: dir, WorkspaceID: "ws", Now: func() time.Time { return clock }, Leeway: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != 3 || c.UserName != "ada" || !c.ReadOnly || c.Roles[0] != "debug" || c.TokenID == "" || !c.IssuedAt.Equal(now) {
		t.Fatalf("claims %+v", c)
	}
	for _, tt := range []struct {
		at     time.Duration
		reason string
	}{
		{59 * time.Second, ""},
		{64 * time.Second, ""}, // within the leeway
		{65 * time.Second, ReasonExpired},
	} {
		clock = now.Add(tt.at)
		_, err := v.Verify(tok)
		if Reason(err) != tt.reason {
			t.Errorf("at +%v: %v, want reason %q", tt.at, err, tt.reason)
		}
	}
}

func TestTokenIDsAreUnique(t *testing.T) {
	dir, signer := newPair(t)
	v, _ := NewVerifier(VerifierOptions{KeysDir: dir, WorkspaceID: "ws"})
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, _ := signer.Mint(Claims{UserName: "a", WorkspaceID: "ws"})
		c, err := v.Verify(tok)
		if err != nil || seen[c.TokenID] {
			t.Fatalf("token %d: %v, id %q repeated=%v", i, err, c.TokenID, seen[c.TokenID])
		}
		seen[c.TokenID] = true
	}
}

func TestUnknownKeyReloadIsRateLimited(t *testing.T) {
	dir, _ := newPair(t)
	clock := time.Unix(1000, 0)
	v, err := NewVerifier(VerifierOptions{KeysDir: dir, WorkspaceID: "ws", Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := GenerateKey(dir)
	newer, _ := LoadSigner(dir, kid)
	newer.now = func() time.Time { return clock }
	tok, _ := newer.Mint(Claims{UserName: "a", WorkspaceID: "ws", Expires: clock.Add(time.Hour)})
	// Within a second of the last read the directory is not read again.
	if _, err := v.Verify(tok); Reason(err) != ReasonUnknownKey {
		t.Fatalf("got %v, want unknown_key before the reload interval", err)
	}
	clock = clock.Add(reloadEvery)
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("rotated-in key refused after the reload interval: %v", err)
	}
}

func TestErrorsNeverContainTheToken(t *testing.T) {
	dir, signer := newPair(t)
	tok, _ := signer.Mint(Claims{UserName: "a", WorkspaceID: "other"})
	v, _ := NewVerifier(VerifierOptions{KeysDir: dir, WorkspaceID: "ws"})
	for _, bad := range []string{tok, tok + "x", tok[:len(tok)-10], strings.Replace(tok, "v2.", "v3.", 1)} {
		_, err := v.Verify(bad)
		if err == nil {
			t.Fatalf("accepted %q", bad)
		}
		if strings.Contains(err.Error(), bad[10:40]) {
			t.Fatalf("error %q contains the token", err)
		}
	}
}

func TestMintRequiresIdentity(t *testing.T) {
	_, signer := newPair(t)
	if _, err := signer.Mint(Claims{WorkspaceID: "ws"}); err == nil {
		t.Error("minted without a user name")
	}
	if _, err := signer.Mint(Claims{UserName: "a"}); err == nil {
		t.Error("minted without a workspace id")
	}
}
