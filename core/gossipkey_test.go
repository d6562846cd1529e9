package core

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGossipKeyOrderValidate(t *testing.T) {
	t.Parallel()
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	now := time.Now().UTC().Truncate(time.Second)
	base := func() *Order {
		return &Order{Schema: OrderSchema, Kind: KindGossipKey, ID: "g-1", KeyID: strings.Repeat("a", 64), Seq: 1,
			IssuedAt: now, NotBefore: now, Expires: now.Add(time.Hour), Targets: []string{"n1"},
			GossipKeys: []string{GossipKeyID(k1), GossipKeyID(k2)}}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("a good gossip-key order: %v", err)
	}
	for name, mut := range map[string]func(*Order){
		"no keys":              func(o *Order) { o.GossipKeys = nil },
		"five keys":            func(o *Order) { o.GossipKeys = append(o.GossipKeys, o.GossipKeys[0], "x", "y", "z") },
		"a key twice":          func(o *Order) { o.GossipKeys[1] = o.GossipKeys[0] },
		"upper-case hex":       func(o *Order) { o.GossipKeys[0] = strings.ToUpper(o.GossipKeys[0]) },
		"a short fingerprint":  func(o *Order) { o.GossipKeys[0] = o.GossipKeys[0][:62] },
		"packages":             func(o *Order) { o.Packages = []string{"x"} },
		"a deploy with keys":   func(o *Order) { o.Kind = KindDeploy },
		"a scan with keys":     func(o *Order) { o.Kind = KindScan },
		"a raw key, not an ID": func(o *Order) { o.GossipKeys[0] = string(k1) },
	} {
		o := base()
		mut(o)
		if err := o.Validate(); !errors.Is(err, ErrBadOrder) {
			t.Errorf("%s: %v, want ErrBadOrder", name, err)
		}
	}
	if GossipKeyID(k1) == GossipKeyID(k2) || len(GossipKeyID(k1)) != 64 {
		t.Fatal("fingerprints collide or are not 64 hex digits")
	}
}

func TestCheckGossipKeyring(t *testing.T) {
	t.Parallel()
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if err := CheckGossipKeyring([][]byte{k1, k2}); err != nil {
		t.Fatal(err)
	}
	for name, ring := range map[string][][]byte{
		"empty":       nil,
		"short key":   {k1[:16]},
		"a key twice": {k1, k1},
		"five keys":   {k1, k2, bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{4}, 32), bytes.Repeat([]byte{5}, 32)},
	} {
		if err := CheckGossipKeyring(ring); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
