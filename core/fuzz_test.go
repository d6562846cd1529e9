package core

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// Fuzz targets for every decoder of bytes that come from the network or from
// disk. Each must never panic, and whatever it accepts must pass Validate and
// re-encode to exactly the bytes it came from (one value, one encoding).

// canonicalSeeds returns data plus variations of it that the table tests
// show to be refused: prefixes, whitespace, reordered fields, escapes.
func canonicalSeeds(data []byte) [][]byte {
	out := [][]byte{data, data[:len(data)/2], append(bytes.Clone(data), '\n'), append([]byte(" "), data...)}
	var indented bytes.Buffer
	if json.Indent(&indented, data, "", " ") == nil {
		out = append(out, indented.Bytes())
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) == nil {
		if sorted, err := json.Marshal(fields); err == nil {
			out = append(out, sorted)
		}
		fields["extra"] = json.RawMessage("1")
		if extra, err := json.Marshal(fields); err == nil {
			out = append(out, extra)
		}
	}
	return out
}

func FuzzDecodeManifest(f *testing.F) {
	for _, m := range []*Manifest{launchManifest(), executeManifest(), storeManifest()} {
		enc, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range canonicalSeeds(enc) {
			f.Add(s)
		}
		// Canonical JSON that Validate refuses.
		bad := *m
		bad.Priority = 11
		if raw, err := encodeCanonical(&bad); err == nil {
			f.Add(raw)
		}
	}
	for _, s := range []string{"", "null", "{}", "[]", `{"schema":1}`, "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			if m != nil {
				t.Fatalf("manifest returned with error %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded manifest fails Validate: %v", err)
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n in: %q\nout: %q", data, enc)
		}
		id, _, err := m.ID()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeManifestFor(id, data); err != nil {
			t.Fatalf("DecodeManifestFor its own ID: %v", err)
		}
		_ = m.FragmentCIDs()
		if len(m.Fragments) > 0 {
			_ = m.FragmentLen(len(m.Fragments) - 1)
		}
	})
}

func FuzzDecodeOrder(f *testing.F) {
	for _, o := range []*Order{deployOrder(), cancelOrder()} {
		enc, err := o.Encode()
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range canonicalSeeds(enc) {
			f.Add(s)
		}
		bad := *o
		bad.Targets = []string{"z", "a"}
		if raw, err := encodeCanonical(&bad); err == nil {
			f.Add(raw)
		}
	}
	for _, s := range []string{"", "null", "{}", `{"schema":1,"kind":"deploy"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := DecodeOrder(data)
		if err != nil {
			if o != nil {
				t.Fatalf("order returned with error %v", err)
			}
			return
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("decoded order fails Validate: %v", err)
		}
		enc, err := o.Encode()
		if err != nil {
			t.Fatalf("decoded order does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n in: %q\nout: %q", data, enc)
		}
		if w, err := ParseWindow(o.Window); err == nil {
			_ = w.NextOpen(o.NotBefore)
		}
		for _, target := range o.Targets {
			if !o.Addressed(target) {
				t.Fatalf("target %q not addressed", target)
			}
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	enc, err := nodeStatus().Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range canonicalSeeds(enc) {
		f.Add(s)
	}
	for _, st := range []State{StateWaiting, ErrTimeout, "BOGUS"} {
		s := nodeStatus()
		s.State, s.Package, s.Output, s.Detail = st, "", "", ""
		if raw, err := encodeCanonical(s); err == nil {
			f.Add(raw)
		}
	}
	for _, s := range []string{"", "null", "{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeStatus(data)
		if err != nil {
			if s != nil {
				t.Fatalf("status returned with error %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("decoded status fails Validate: %v", err)
		}
		enc, err := s.Encode()
		if err != nil {
			t.Fatalf("decoded status does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n in: %q\nout: %q", data, enc)
		}
		_, _, _ = s.State.Final(), s.State.IsError(), s.State.Valid()
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	order, err := SignOrder(deployOrder(), coordKey)
	if err != nil {
		f.Fatal(err)
	}
	status, err := SignStatus(nodeStatus(), nodeKey)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range []*Envelope{order, status} {
		enc, err := e.Encode()
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range canonicalSeeds(enc) {
			f.Add(s)
		}
	}
	for _, s := range []string{"", "null", "{}", `{"type":"relaymesh/order/v1"}`} {
		f.Add([]byte(s))
	}
	v := newTestVerifier(t0, 0)
	v.Self = "node-a"
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEnvelope(data)
		if err != nil {
			if e != nil {
				t.Fatalf("envelope returned with error %v", err)
			}
			return
		}
		enc, err := e.Encode()
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n in: %q\nout: %q", data, enc)
		}
		// Whatever it carries, opening it must not panic; an order that
		// verifies under the pinned key was signed by it.
		if o, err := v.Check(e); err == nil && !bytes.Equal(e.Payload, mustEncodeOrder(t, o)) {
			t.Fatalf("verified order does not match the signed payload")
		}
		_, _ = OpenStatus(e, "node-a", pubOf(nodeKey))
		// Embedded in a wire message it decodes the same way.
		var push OrdersPush
		msg := append(append([]byte(`{"orders":[`), data...), "]}"...)
		if err := json.Unmarshal(msg, &push); err != nil {
			t.Fatalf("envelope accepted alone but not inside OrdersPush: %v", err)
		}
	})
}

func mustEncodeOrder(t *testing.T, o *Order) []byte {
	t.Helper()
	b, err := o.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzParseCID(f *testing.F) {
	good := FragmentCID([]byte("x"))
	b58, err := good.StringOfBase('z')
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		good.String(), b58, "", "hello", "b", good.String()[:20],
		"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
		cid.NewCidV1(cid.DagProtobuf, good.Hash()).String(),
		"bafkqaaa", // identity, empty
	} {
		f.Add(s, []byte("x"))
		f.Add(s, []byte("y"))
	}
	f.Add(string(good.Bytes()), []byte(nil))
	f.Fuzz(func(t *testing.T, s string, data []byte) {
		c, err := ParseCID(s)
		if err != nil {
			if c.Defined() {
				t.Fatalf("CID %s returned with error %v", c, err)
			}
			checkBinaryCID(t, []byte(s))
			return
		}
		if err := CheckCID(c); err != nil {
			t.Fatalf("parsed CID fails CheckCID: %v", err)
		}
		back, err := ParseCID(c.String())
		if err != nil || !back.Equals(c) {
			t.Fatalf("ParseCID(%s) = %s, %v", c, back, err)
		}
		if d, err := DigestOf(c); err != nil || len(d) != 32 {
			t.Fatalf("DigestOf = %x, %v", d, err)
		}
		err = VerifyBytes(c, data)
		if match := FragmentCID(data).Equals(c); match != (err == nil) {
			t.Fatalf("VerifyBytes(%s, %q) = %v, but FragmentCID equal: %v", c, data, err, match)
		}
	})
}

// checkBinaryCID runs CheckCID and VerifyBytes over a CID in binary form.
func checkBinaryCID(t *testing.T, b []byte) {
	c, err := cid.Cast(b)
	if err != nil {
		return
	}
	if CheckCID(c) == nil {
		if err := VerifyBytes(c, b); err == nil && !FragmentCID(b).Equals(c) {
			t.Fatalf("VerifyBytes accepted bytes of another CID")
		}
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"", "Sat 02:00-04:00", "Mon,Wed 22:00-02:00", "02:00-04:00", "Xyz 01:00-02:00", "25:00-26:00", "01:00", "01:00-01:00"} {
		f.Add(s, int64(0))
	}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		if w.Start < 0 || w.Start >= 24*60 || w.End < 0 || w.End >= 24*60 || (!w.Always() && w.Start == w.End) {
			t.Fatalf("ParseWindow(%q) = %+v", s, w)
		}
		at := t0.Add(time.Duration(unix%(400*24*3600)) * time.Second)
		next := w.NextOpen(at)
		if next.Before(at) || !w.Contains(next) {
			t.Fatalf("%q.NextOpen(%s) = %s", s, at, next)
		}
	})
}
