package core

import (
	"errors"
	"testing"
)

func TestMemberListSignOpen(t *testing.T) {
	t.Parallel()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good := func() *MemberList {
		return &MemberList{Schema: MemberListSchema, Site: "paris", Version: 3, Issued: 1,
			Members: []ListedNode{{NodeID: "12D3KooWa", Name: "a"}, {NodeID: "12D3KooWb", Name: "b"}},
			Relays:  []ListedNode{{NodeID: "12D3KooWz", Site: "lyon"}}}
	}
	pinned := PinnedKeys(pubOf(key))
	env, err := SignMemberList(good(), key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenMemberList(env, pinned)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Has("12D3KooWb") || l.Has("12D3KooWz") || !l.HasRelay("12D3KooWz") || l.HasRelay("12D3KooWa") {
		t.Fatalf("lookups wrong on %+v", l)
	}
	if _, err := OpenMemberList(env, PinnedKeys(pubOf(other))); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("list checked against another key: %v, want ErrUnknownKey", err)
	}
	forged := Seal(TypeMemberList, env.Payload, other)
	forged.KeyID = env.KeyID
	if _, err := OpenMemberList(forged, pinned); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("list signed by another key under the pinned key ID: %v, want ErrBadSignature", err)
	}
	asOrder := Seal(TypeOrder, env.Payload, key)
	if _, err := OpenMemberList(asOrder, pinned); !errors.Is(err, ErrWrongType) {
		t.Fatalf("list bytes signed as an order: %v, want ErrWrongType", err)
	}
	for name, mut := range map[string]func(l *MemberList){
		"version 0":     func(l *MemberList) { l.Version = 0 },
		"no site":       func(l *MemberList) { l.Site = "" },
		"schema":        func(l *MemberList) { l.Schema = 2 },
		"unsorted":      func(l *MemberList) { l.Members[0], l.Members[1] = l.Members[1], l.Members[0] },
		"twice":         func(l *MemberList) { l.Members[1] = l.Members[0] },
		"bad node ID":   func(l *MemberList) { l.Members[0].NodeID = "12D3/../x" },
		"empty node ID": func(l *MemberList) { l.Relays[0].NodeID = "" },
	} {
		l := good()
		mut(l)
		if _, err := SignMemberList(l, key); !errors.Is(err, ErrBadMemberList) {
			t.Errorf("%s: sign gave %v, want ErrBadMemberList", name, err)
		}
	}
}
