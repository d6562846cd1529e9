package coordinator

import (
	"errors"
	"testing"
)

// TestTokenDefaultsToOneUse: a token created without --uses enrolls one
// node; the second is refused. More uses, or unlimited, are explicit.
func TestTokenDefaultsToOneUse(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	res, err := h.cl.CreateToken(h.ctx, TokenRequest{Site: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Uses != 1 || res.Expires.Sub(h.c.now()) > DefaultTokenTTL {
		t.Fatalf("default token: %d uses, expires %s, want 1 use within %s", res.Uses, res.Expires, DefaultTokenTTL)
	}
	newFakeNode(t, h, "one").mustEnroll(res.Token)
	_, err = newFakeNode(t, h, "two").enroll(res.Token)
	remoteErr(t, err, "join token refused", "already used 1 of 1 times")

	unl := h.token(TokenRequest{Site: "a", Unlimited: true})
	for _, name := range []string{"u1", "u2", "u3"} {
		newFakeNode(t, h, name).mustEnroll(unl)
	}
	for _, bad := range []TokenRequest{{Site: "a", Uses: -1}, {Site: "a", Uses: 2, Unlimited: true}} {
		if _, err := h.c.CreateToken(bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("CreateToken(%+v) = %v, want ErrBadRequest", bad, err)
		}
	}
}

// TestNodeNamesUnique: a second identity enrolling under a name in use is
// refused with a clear error and does not take the name; the owner
// re-enrolls under it; a node syncing with another's name keeps its own.
func TestNodeNamesUnique(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.token(TokenRequest{Site: "a", Uses: 5})
	first := newFakeNode(t, h, "web-1")
	first.mustEnroll(tok)
	thief := newFakeNode(t, h, "web-1")
	_, err := thief.enroll(tok)
	remoteErr(t, err, `node name "web-1" is already used by node `+first.ID(), "enroll this node under another name")
	v, err := h.cl.Node(h.ctx, "web-1")
	if err != nil || v.ID != first.ID() {
		t.Fatalf("web-1 is %+v (%v), want node %s", v, err, first.ID())
	}
	first.mustEnroll(tok) // the same identity, the same name: still fine

	other := newFakeNode(t, h, "web-2")
	other.mustEnroll(tok)
	other.name = "web-1"
	if _, err := other.sync(0); err != nil {
		t.Fatal(err)
	}
	if v, err := h.cl.Node(h.ctx, other.ID()); err != nil || v.Name != "web-2" {
		t.Fatalf("node renaming itself to a name in use: %+v (%v), want it to keep web-2", v, err)
	}
}
