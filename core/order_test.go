package core

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func mustEncodeEnvelope(t testing.TB, o *Order) []byte {
	t.Helper()
	e, err := SignOrder(o, coordKey)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOrderValidate(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func() *Order{"deploy": deployOrder, "cancel": cancelOrder} {
		if err := mk().Validate(); err != nil {
			t.Errorf("%s order: %v", name, err)
		}
	}
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name   string
		base   func() *Order
		mutate func(o *Order)
		msg    []string
	}{
		{"unsorted targets", deployOrder, func(o *Order) { o.Targets = []string{"node-b", "node-a"} }, []string{"sorted"}},
		{"duplicate targets", deployOrder, func(o *Order) { o.Targets = []string{"node-a", "node-a"} }, []string{"unique"}},
		{"no targets", deployOrder, func(o *Order) { o.Targets = nil }, []string{"0 targets"}},
		{"empty target", deployOrder, func(o *Order) { o.Targets = []string{""} }, []string{`target ""`}},
		{"long target", deployOrder, func(o *Order) { o.Targets = []string{strings.Repeat("n", 129)} }, []string{"not a node ID"}},
		{"invalid UTF-8 target", deployOrder, func(o *Order) { o.Targets = []string{"node-\xff"} }, []string{"UTF-8"}},
		{"zero seq", deployOrder, func(o *Order) { o.Seq = 0 }, []string{"sequence 0"}},
		{"expires before not_before", deployOrder, func(o *Order) { o.Expires = o.NotBefore.Add(-time.Second) }, []string{"expires 2026-03-14T09:59:59Z", "not after not_before 2026-03-14T10:00:00Z"}},
		{"expires at not_before", deployOrder, func(o *Order) { o.Expires = o.NotBefore }, []string{"not after not_before"}},
		{"bad window", deployOrder, func(o *Order) { o.Window = "Sat 25:00-26:00" }, []string{"Sat 25:00-26:00"}},
		{"window start equals end", deployOrder, func(o *Order) { o.Window = "01:00-01:00" }, []string{"01:00-01:00"}},
		{"priority 11", deployOrder, func(o *Order) { o.Priority = 11 }, []string{"priority 11"}},
		{"priority -1", deployOrder, func(o *Order) { o.Priority = -1 }, []string{"priority -1"}},
		{"cancel with packages", cancelOrder, func(o *Order) { o.Packages = deployOrder().Packages }, []string{"cancel order carries only"}},
		{"cancel with window", cancelOrder, func(o *Order) { o.Window = "Sat 02:00-04:00" }, []string{"cancel order carries only"}},
		{"cancel with prefetch", cancelOrder, func(o *Order) { o.Prefetch = true }, []string{"cancel order carries only"}},
		{"cancel naming nothing", cancelOrder, func(o *Order) { o.Cancels = "" }, []string{`("")`}},
		{"cancel naming a bad ID", cancelOrder, func(o *Order) { o.Cancels = "a b" }, []string{`("a b")`}},
		{"deploy that cancels", deployOrder, func(o *Order) { o.Cancels = "dep-1" }, []string{"cancels nothing"}},
		{"deploy without packages", deployOrder, func(o *Order) { o.Packages = nil }, []string{"0 packages"}},
		{"deploy with 65 packages", deployOrder, func(o *Order) { o.Packages = testCIDs(65) }, []string{"65 packages"}},
		{"bad package CID", deployOrder, func(o *Order) { o.Packages = []string{"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"} }, []string{"package 0", "version 0"}},
		{"unknown mode", deployOrder, func(o *Order) { o.Mode = "parallel" }, []string{`mode "parallel"`}},
		{"no mode", deployOrder, func(o *Order) { o.Mode = "" }, []string{`mode ""`}},
		{"unknown reboot", deployOrder, func(o *Order) { o.Reboot = "sometimes" }, []string{`"sometimes"`}},
		{"negative timeout", deployOrder, func(o *Order) { o.Timeout = -1 }, []string{"timeout -1s"}},
		{"unknown kind", deployOrder, func(o *Order) { o.Kind = "install" }, []string{`kind "install"`}},
		{"schema 0", deployOrder, func(o *Order) { o.Schema = 0 }, []string{"schema 0"}},
		{"bad ID", deployOrder, func(o *Order) { o.ID = "../x" }, []string{`id "../x"`}},
		{"long ID", deployOrder, func(o *Order) { o.ID = strings.Repeat("x", 65) }, []string{"id"}},
		{"short key ID", deployOrder, func(o *Order) { o.KeyID = "abc" }, []string{`key id "abc"`}},
		{"zero issued_at", deployOrder, func(o *Order) { o.IssuedAt = time.Time{} }, []string{"issued_at"}},
		{"local expires", deployOrder, func(o *Order) { o.Expires = o.Expires.In(berlin) }, []string{"expires", "UTC"}},
		{"fractional not_before", deployOrder, func(o *Order) { o.NotBefore = o.NotBefore.Add(time.Millisecond) }, []string{"not_before", "whole seconds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := tt.base()
			tt.mutate(o)
			checkErr(t, o.Validate(), ErrBadOrder, tt.msg...)
			_, err := o.Encode()
			checkErr(t, err, ErrBadOrder)
			if o.KeyID == KeyID(pubOf(coordKey)) { // SignOrder sets the key ID
				_, err = SignOrder(o, coordKey)
				checkErr(t, err, ErrBadOrder)
			}
			if raw, err := encodeCanonical(o); err == nil {
				_, err = DecodeOrder(raw)
				checkRefusedFromNetwork(t, raw, err, ErrBadOrder)
			}
		})
	}
}

func TestOrderRoundTrip(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func() *Order{"deploy": deployOrder, "cancel": cancelOrder} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := mk()
			o.KeyID = "" // SignOrder fills it in
			env, err := SignOrder(o, coordKey)
			if err != nil {
				t.Fatal(err)
			}
			if o.KeyID != KeyID(pubOf(coordKey)) || env.KeyID != o.KeyID || env.Type != TypeOrder {
				t.Fatalf("SignOrder: order key %s, envelope %s %s", o.KeyID, env.Type, env.KeyID)
			}
			got, err := OpenOrder(env, pubOf(coordKey))
			if err != nil {
				t.Fatalf("OpenOrder: %v", err)
			}
			if !reflect.DeepEqual(got, o) {
				t.Fatalf("OpenOrder = %+v, want %+v", got, o)
			}
			// Through the wire encoding as well.
			raw, err := env.Encode()
			if err != nil {
				t.Fatal(err)
			}
			env2, err := DecodeEnvelope(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err = OpenOrder(env2, pubOf(coordKey))
			if err != nil || !reflect.DeepEqual(got, o) {
				t.Fatalf("OpenOrder after the wire = %+v, %v", got, err)
			}
		})
	}
}

func TestOrderAddressed(t *testing.T) {
	t.Parallel()
	o := deployOrder()
	for node, want := range map[string]bool{"node-a": true, "node-b": true, "node-c": true, "node-d": false, "": false, "node": false} {
		if got := o.Addressed(node); got != want {
			t.Errorf("Addressed(%q) = %v, want %v", node, got, want)
		}
	}
}

func TestDecodeOrderRejects(t *testing.T) {
	t.Parallel()
	enc, err := deployOrder().Encode()
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(enc) {
		_, err := DecodeOrder(enc[:i])
		checkErr(t, err, ErrBadOrder)
	}
	replace := func(old, new string) []byte {
		if !bytes.Contains(enc, []byte(old)) {
			t.Fatalf("encoding %s lacks %s", enc, old)
		}
		return bytes.Replace(enc, []byte(old), []byte(new), 1)
	}
	for name, data := range map[string][]byte{
		"empty":              nil,
		"null":               []byte("null"),
		"signed envelope":    mustEncodeEnvelope(t, deployOrder()),
		"unknown field":      replace(`{"schema":1`, `{"schema":1,"admin":true`),
		"offset time":        replace(`"issued_at":"2026-03-14T10:00:00Z"`, `"issued_at":"2026-03-14T11:00:00+01:00"`),
		"zero offset time":   replace(`"issued_at":"2026-03-14T10:00:00Z"`, `"issued_at":"2026-03-14T10:00:00+00:00"`),
		"fractional seconds": replace(`"issued_at":"2026-03-14T10:00:00Z"`, `"issued_at":"2026-03-14T10:00:00.000Z"`),
		"negative seq":       replace(`"seq":11`, `"seq":-11`),
		"huge seq":           replace(`"seq":11`, `"seq":18446744073709551616`),
		"leading zero seq":   replace(`"seq":11`, `"seq":011`),
		"whitespace":         replace(`,"kind"`, `, "kind"`),
		"targets reordered":  replace(`["node-a","node-b","node-c"]`, `["node-b","node-a","node-c"]`),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeOrder(data)
			checkErr(t, err, ErrBadOrder)
		})
	}
}

func TestSignAndOpenTampered(t *testing.T) {
	t.Parallel()
	env, err := SignOrder(deployOrder(), coordKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := SignStatus(nodeStatus(), nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	clone := func(e *Envelope) *Envelope {
		c := *e
		c.Payload = bytes.Clone(e.Payload)
		c.Sig = bytes.Clone(e.Sig)
		return &c
	}
	tests := []struct {
		name string
		env  func() *Envelope
		open func(e *Envelope) error
		want error
	}{
		{"payload byte flipped", func() *Envelope {
			e := clone(env)
			e.Payload[len(e.Payload)/2] ^= 1
			return e
		}, openOrderWith(coordKey), ErrBadSignature},
		{"payload priority rewritten", func() *Envelope {
			e := clone(env)
			e.Payload = bytes.Replace(e.Payload, []byte(`"priority":5`), []byte(`"priority":9`), 1)
			return e
		}, openOrderWith(coordKey), ErrBadSignature},
		{"payload target added", func() *Envelope {
			e := clone(env)
			e.Payload = bytes.Replace(e.Payload, []byte(`"node-c"`), []byte(`"node-c","node-x"`), 1)
			return e
		}, openOrderWith(coordKey), ErrBadSignature},
		{"signature byte flipped", func() *Envelope {
			e := clone(env)
			e.Sig[0] ^= 0x80
			return e
		}, openOrderWith(coordKey), ErrBadSignature},
		{"signature truncated", func() *Envelope {
			e := clone(env)
			e.Sig = e.Sig[:63]
			return e
		}, openOrderWith(coordKey), ErrBadSignature},
		{"no signature", func() *Envelope {
			e := clone(env)
			e.Sig = nil
			return e
		}, openOrderWith(coordKey), ErrBadSignature},
		{"signed by another key", func() *Envelope {
			e, err := SignOrder(deployOrder(), otherKey)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}, openOrderWith(coordKey), ErrUnknownKey},
		{"another key, pinned key ID claimed", func() *Envelope {
			e, err := SignOrder(deployOrder(), otherKey)
			if err != nil {
				t.Fatal(err)
			}
			e.KeyID = KeyID(pubOf(coordKey))
			return e
		}, openOrderWith(coordKey), ErrBadSignature},
		{"order names another key than the envelope", func() *Envelope {
			o := deployOrder()
			o.KeyID = KeyID(pubOf(otherKey))
			b, err := o.Encode()
			if err != nil {
				t.Fatal(err)
			}
			return Seal(TypeOrder, b, coordKey)
		}, openOrderWith(coordKey), ErrBadOrder},
		{"signed garbage", func() *Envelope {
			return Seal(TypeOrder, []byte(`{"schema":1}`), coordKey)
		}, openOrderWith(coordKey), ErrBadOrder},
		{"order presented as status", func() *Envelope { return clone(env) }, func(e *Envelope) error {
			_, err := OpenStatus(e, "node-a", pubOf(coordKey))
			return err
		}, ErrWrongType},
		{"order with type rewritten to status", func() *Envelope {
			e := clone(env)
			e.Type = TypeStatus
			return e
		}, func(e *Envelope) error {
			_, err := OpenStatus(e, "node-a", pubOf(coordKey))
			return err
		}, ErrBadSignature},
		{"status presented as order", func() *Envelope { return clone(st) }, openOrderWith(nodeKey), ErrWrongType},
		{"status with type rewritten to order", func() *Envelope {
			e := clone(st)
			e.Type = TypeOrder
			return e
		}, openOrderWith(nodeKey), ErrBadSignature},
		{"status signature under an order's type", func() *Envelope {
			// An order payload carrying a status signature: neither the
			// payload nor the type match what was signed.
			e := clone(env)
			e.KeyID, e.Sig = st.KeyID, bytes.Clone(st.Sig)
			return e
		}, openOrderWith(nodeKey), ErrBadSignature},
		{"unknown type", func() *Envelope {
			e := clone(env)
			e.Type = "relaymesh/order/v2"
			return e
		}, openOrderWith(coordKey), ErrWrongType},
		{"nil envelope", func() *Envelope { return nil }, openOrderWith(coordKey), ErrBadEnvelope},
		{"nil envelope as status", func() *Envelope { return nil }, func(e *Envelope) error {
			_, err := OpenStatus(e, "node-a", pubOf(nodeKey))
			return err
		}, ErrBadEnvelope},
		{"short public key", func() *Envelope { return clone(env) }, func(e *Envelope) error {
			_, err := OpenOrder(e, pubOf(coordKey)[:31])
			return err
		}, ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkErr(t, tt.open(tt.env()), tt.want)
		})
	}
}

func openOrderWith(k ed25519.PrivateKey) func(*Envelope) error {
	return func(e *Envelope) error {
		o, err := OpenOrder(e, pubOf(k))
		if err != nil && o != nil {
			return fmt.Errorf("OpenOrder returned an order with its error %w", err)
		}
		return err
	}
}

func TestStatusRoundTrip(t *testing.T) {
	t.Parallel()
	s := nodeStatus()
	env, err := SignStatus(s, nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != TypeStatus || env.KeyID != KeyID(pubOf(nodeKey)) {
		t.Fatalf("SignStatus: %s %s", env.Type, env.KeyID)
	}
	got, err := OpenStatus(env, "node-a", pubOf(nodeKey))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("OpenStatus = %+v, want %+v", got, s)
	}
	// A relay cannot pass one node's report off as another's.
	_, err = OpenStatus(env, "node-b", pubOf(nodeKey))
	checkErr(t, err, ErrBadSignature, "node-a", "node-b")
	_, err = OpenStatus(env, "node-a", pubOf(otherKey))
	checkErr(t, err, ErrUnknownKey)
}

func TestStatusValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(s *Status)
		msg    string
	}{
		{"schema 0", func(s *Status) { s.Schema = 0 }, "schema 0"},
		{"no node", func(s *Status) { s.NodeID = "" }, `node ""`},
		{"long node", func(s *Status) { s.NodeID = strings.Repeat("n", 129) }, "not a node ID"},
		{"invalid UTF-8 node", func(s *Status) { s.NodeID = "node-\xff" }, "UTF-8"},
		{"bad order", func(s *Status) { s.OrderID = "a/b" }, `order "a/b"`},
		{"bad package", func(s *Status) { s.Package = "garbage" }, "package"},
		{"zero seq", func(s *Status) { s.Seq = 0 }, "sequence 0"},
		{"unknown state", func(s *Status) { s.State = "DONE" }, `state "DONE"`},
		{"zero time", func(s *Status) { s.Time = time.Time{} }, "time"},
		{"local time", func(s *Status) { s.Time = s.Time.In(time.FixedZone("X", 7200)) }, "UTC"},
		{"negative bytes", func(s *Status) { s.BytesFetched = -1 }, "bytes fetched -1"},
		{"long output", func(s *Status) { s.Output = strings.Repeat("x", MaxOutputTail+1) }, "output"},
		{"invalid UTF-8 output", func(s *Status) { s.Output = "\xff" }, "output"},
		{"long detail", func(s *Status) { s.Detail = strings.Repeat("x", 4097) }, "detail: 4097 bytes"},
		{"invalid UTF-8 detail", func(s *Status) { s.Detail = "\xc3" }, "detail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := nodeStatus()
			tt.mutate(s)
			checkErr(t, s.Validate(), ErrBadStatus, tt.msg)
			_, err := SignStatus(s, nodeKey)
			checkErr(t, err, ErrBadStatus)
			if raw, err := encodeCanonical(s); err == nil {
				_, err = DecodeStatus(raw)
				checkRefusedFromNetwork(t, raw, err, ErrBadStatus)
			}
		})
	}
}

func TestStatusEncodeRoundTrips(t *testing.T) {
	t.Parallel()
	for _, node := range []string{"node-a", "nöde ✓", "\u2028", "<&>", "node-\xff", "\xed\xa0\x80"} {
		s := nodeStatus()
		s.NodeID = node
		enc, err := s.Encode()
		if err != nil {
			continue // refused up front is fine
		}
		back, err := DecodeStatus(enc)
		if err != nil {
			t.Errorf("node %q: Encode gave %s, which DecodeStatus refuses: %v", node, enc, err)
			continue
		}
		if back.NodeID != node {
			t.Errorf("node %q came back as %q", node, back.NodeID)
		}
	}
}

func TestStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s            State
		final, isErr bool
	}{
		{StateWaiting, false, false},
		{StateNotified, false, false},
		{StateDownloading, false, false},
		{StateDownloaded, false, false},
		{StateInstalling, false, false},
		{StateSuccess, true, false},
		{StateCancelled, true, false},
		{ErrAlreadySetup, true, true},
		{ErrBadID, true, true},
		{ErrBadDigestSt, true, true},
		{ErrDownloadPack, true, true},
		{ErrBuild, true, true},
		{ErrExecute, true, true},
		{ErrClean, true, true},
		{ErrTimeout, true, true},
		{ErrAborted, true, true},
		{ErrBadSigSt, true, true},
		{ErrExpiredSt, true, true},
		{ErrReplaySt, true, true},
		{ErrDowngrade, true, true},
	}
	if len(tests) != len(allStates) {
		t.Errorf("%d states tested, %d known", len(tests), len(allStates))
	}
	for _, tt := range tests {
		if !tt.s.Valid() || tt.s.Final() != tt.final || tt.s.IsError() != tt.isErr {
			t.Errorf("%s: valid %v final %v error %v", tt.s, tt.s.Valid(), tt.s.Final(), tt.s.IsError())
		}
	}
	for _, s := range []State{"", "ERR_", "success", "ERR_UNKNOWN"} {
		if s.Valid() {
			t.Errorf("%q is valid", s)
		}
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short", "hello", 10, "hello"},
		{"exact", "hello", 5, "hello"},
		{"keeps the end", "line 1\nline 2\nline 3\n", 7, "line 3\n"},
		{"empty", "", 4, ""},
		{"zero max", "hello", 0, ""},
		{"cut before a rune", "aé", 2, "é"},
		{"cut inside a rune", "aéb", 2, "b"},
		{"cut inside a 4-byte rune", "x🚀yz", 5, "\uFFFDyz"},
		{"whole 4-byte rune", "x🚀yz", 6, "🚀yz"},
		{"invalid bytes inside", "ab\xffcd", 10, "ab\uFFFDcd"},
		{"invalid run replaced once", "\xff\xff\xffa", 4, "\uFFFDa"},
		{"replacements grow past max", "a\xffb\xffc", 5, "b\uFFFDc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Tail([]byte(tt.in), tt.max)
			if got != tt.want {
				t.Errorf("Tail(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
	// Any cut of mixed text is valid UTF-8, at most max bytes, and, but
	// for a replaced partial rune in front, a suffix of the input.
	in := []byte(strings.Repeat("ok ✓ 🚀 é\n", 300))
	for max := range 64 {
		got := Tail(in, max)
		if len(got) > max || !utf8.ValidString(got) || !strings.HasSuffix(string(in), strings.TrimPrefix(got, "\uFFFD")) {
			t.Fatalf("Tail(…, %d) = %q", max, got)
		}
		if max >= 4 && len(got) < max-3 {
			t.Errorf("Tail(…, %d) kept only %d bytes", max, len(got))
		}
	}
}
