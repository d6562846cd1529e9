package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestManifestValid(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func() *Manifest{
		"launch":               launchManifest,
		"execute (no archive)": executeManifest,
		"execute with archive": func() *Manifest {
			m := launchManifest()
			m.Action = ActionExecute
			return m
		},
		"store": storeManifest,
		"store unix path": func() *Manifest {
			m := storeManifest()
			m.StorePath = "/opt/wallpaper"
			return m
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := mk()
			if err := m.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			id1, enc1 := mustID(t, m)
			id2, enc2 := mustID(t, mk())
			id3, _ := mustID(t, m)
			if id1 != id2 || id1 != id3 || !bytes.Equal(enc1, enc2) {
				t.Fatalf("same manifest, different IDs: %s %s %s", id1, id2, id3)
			}
			if got := FragmentCID(enc1).String(); got != id1 {
				t.Errorf("ID %s is not the CID of the encoding (%s)", id1, got)
			}
			enc, err := m.Encode()
			if err != nil || !bytes.Equal(enc, enc1) {
				t.Fatalf("Encode = %s, %v; ID encoded %s", enc, err, enc1)
			}
			id, err := ParseCID(id1)
			if err != nil {
				t.Fatal(err)
			}
			back, err := DecodeManifestFor(id, enc1)
			if err != nil {
				t.Fatalf("DecodeManifestFor: %v", err)
			}
			if !reflect.DeepEqual(back, m) {
				t.Errorf("decoded %+v, want %+v", back, m)
			}
		})
	}
}

func TestManifestInvalid(t *testing.T) {
	t.Parallel()
	sum := FragmentCID([]byte("x")).Hash()
	dagPB := cid.NewCidV1(cid.DagProtobuf, sum).String()
	sha512 := cid.NewCidV1(cid.Raw, mustSum(t, []byte("x"), mh.SHA2_512, -1)).String()
	b58, err := FragmentCID([]byte("fragment 2")).StringOfBase('z')
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		base   func() *Manifest
		mutate func(m *Manifest)
		msg    []string
	}{
		{"priority -1", launchManifest, func(m *Manifest) { m.Priority = -1 }, []string{"priority -1"}},
		{"priority 11", launchManifest, func(m *Manifest) { m.Priority = 11 }, []string{"priority 11"}},
		{"unknown action", launchManifest, func(m *Manifest) { m.Action = "install" }, []string{`action "install"`}},
		{"empty action", executeManifest, func(m *Manifest) { m.Action = "" }, []string{`action ""`}},
		{"store without path", storeManifest, func(m *Manifest) { m.StorePath = "" }, []string{"store needs a store path"}},
		{"store without archive", storeManifest, func(m *Manifest) {
			m.Size, m.Digest, m.FragmentSize, m.Fragments = 0, "", 0, nil
		}, []string{"store needs an archive"}},
		{"launch without command", launchManifest, func(m *Manifest) { m.Command = nil }, []string{"launch needs a command"}},
		{"execute without command", executeManifest, func(m *Manifest) { m.Command = nil }, []string{"execute needs a command"}},
		{"launch without archive", launchManifest, func(m *Manifest) {
			m.Size, m.Digest, m.FragmentSize, m.Fragments = 0, "", 0, nil
		}, []string{"launch needs an archive"}},
		{"bad digest", launchManifest, func(m *Manifest) { m.Digest = "sha256:XYZ" }, []string{`"sha256:XYZ"`}},
		{"md5 digest", launchManifest, func(m *Manifest) { m.Digest = "md5:d41d8cd98f00b204e9800998ecf8427e" }, []string{"md5:d41d8"}},
		{"upper-case digest", launchManifest, func(m *Manifest) { m.Digest = strings.ToUpper(m.Digest) }, []string{"SHA256:"}},
		{"too few fragments", launchManifest, func(m *Manifest) { m.Fragments = m.Fragments[:3] }, []string{"3 fragments listed", "needs 4"}},
		{"too many fragments", launchManifest, func(m *Manifest) { m.Fragments = testCIDs(5) }, []string{"5 fragments listed", "needs 4"}},
		{"dag-pb fragment", launchManifest, func(m *Manifest) { m.Fragments[2] = dagPB }, []string{"fragment 2", dagPB}},
		{"sha2-512 fragment", launchManifest, func(m *Manifest) { m.Fragments[1] = sha512 }, []string{"fragment 1", sha512}},
		{"garbage fragment", launchManifest, func(m *Manifest) { m.Fragments[0] = "not-a-cid" }, []string{"fragment 0", "not-a-cid"}},
		{"base58 fragment", launchManifest, func(m *Manifest) { m.Fragments[2] = b58 }, []string{"fragment 2", b58, "canonical"}},
		{"relative store path", storeManifest, func(m *Manifest) { m.StorePath = "opt/wallpaper" }, []string{`"opt/wallpaper"`}},
		{"dot store path", storeManifest, func(m *Manifest) { m.StorePath = "./x" }, []string{`"./x"`}},
		{"drive-relative store path", storeManifest, func(m *Manifest) { m.StorePath = `C:wallpaper` }, []string{`"C:wallpaper"`}},
		{"NUL in store path", storeManifest, func(m *Manifest) { m.StorePath = "/opt/a\x00b" }, []string{"store path"}},
		{"store path for launch", launchManifest, func(m *Manifest) { m.StorePath = "/opt/x" }, []string{`"/opt/x"`, "launch"}},
		{"NUL in argv", launchManifest, func(m *Manifest) { m.Command[1] = "--quiet\x00--loud" }, []string{"command: argument 1", "NUL"}},
		{"NUL in uninstall", launchManifest, func(m *Manifest) { m.Uninstall = []string{"\x00"} }, []string{"uninstall: argument 0", "NUL"}},
		{"empty program", executeManifest, func(m *Manifest) { m.Command[0] = "" }, []string{"command: program name is empty"}},
		{"too many arguments", executeManifest, func(m *Manifest) { m.Command = make([]string, 257); m.Command[0] = "x" }, []string{"257 arguments"}},
		{"invalid UTF-8 in argv", executeManifest, func(m *Manifest) { m.Command[2] = "spool\xffer" }, []string{"command: argument 2", "UTF-8"}},
		{"invalid UTF-8 in store path", storeManifest, func(m *Manifest) { m.StorePath = "/opt/\xff" }, []string{"store path", "UTF-8"}},
		{"schema 2", launchManifest, func(m *Manifest) { m.Schema = 2 }, []string{"schema 2"}},
		{"empty name", launchManifest, func(m *Manifest) { m.Name = "" }, []string{`name ""`}},
		{"name with slash", launchManifest, func(m *Manifest) { m.Name = "../agent" }, []string{`name "../agent"`}},
		{"version with space", launchManifest, func(m *Manifest) { m.Version = "1 2" }, []string{`version "1 2"`}},
		{"unknown OS", launchManifest, func(m *Manifest) { m.OS = "plan9" }, []string{`os "plan9"`}},
		{"unknown arch", launchManifest, func(m *Manifest) { m.Arch = "mips" }, []string{`arch "mips"`}},
		{"negative timeout", launchManifest, func(m *Manifest) { m.TimeoutSec = -1 }, []string{"timeout -1s"}},
		{"negative size", executeManifest, func(m *Manifest) { m.Size = -5 }, []string{"size -5"}},
		{"digest without archive", executeManifest, func(m *Manifest) { m.Digest = testDigest() }, []string{"without archive"}},
		{"fragments without archive", executeManifest, func(m *Manifest) { m.Fragments = testCIDs(1) }, []string{"without archive"}},
		{"fragment size 0", launchManifest, func(m *Manifest) { m.FragmentSize = 0 }, []string{"fragment size 0"}},
		{"fragment size too big", launchManifest, func(m *Manifest) { m.FragmentSize = MaxFragmentSize + 1 }, []string{"fragment size 67108865"}},
		{"size overflows the count", launchManifest, func(m *Manifest) { m.Size = 1<<63 - 1 }, []string{"fragments listed"}},
		{"negative success code", executeManifest, func(m *Manifest) { m.SuccessCodes = []int64{0, -1} }, []string{"success code -1"}},
		{"success code above a DWORD", executeManifest, func(m *Manifest) { m.SuccessCodes = []int64{1 << 32} }, []string{"success code 4294967296"}},
		{"success code twice", executeManifest, func(m *Manifest) { m.SuccessCodes = []int64{2, 0, 2} }, []string{"success code 2 listed twice"}},
		{"too many success codes", executeManifest, func(m *Manifest) {
			for i := range MaxSuccessCodes + 1 {
				m.SuccessCodes = append(m.SuccessCodes, int64(i))
			}
		}, []string{"33 success codes"}},
		{"success codes without command", storeManifest, func(m *Manifest) { m.SuccessCodes = []int64{0} }, []string{"without a command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := tt.base()
			tt.mutate(m)
			checkErr(t, m.Validate(), ErrBadManifest, tt.msg...)
			_, err := m.Encode()
			checkErr(t, err, ErrBadManifest, tt.msg...)
			_, _, err = m.ID()
			checkErr(t, err, ErrBadManifest)
			// The same manifest from the network is refused the same way.
			raw, err := encodeCanonical(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeManifest(raw)
			checkRefusedFromNetwork(t, raw, err, ErrBadManifest)
		})
	}
}

// TestManifestEncodeRoundTrips checks that whatever Encode accepts,
// DecodeManifest accepts again: a node must be able to read every package
// the coordinator builds.
func TestManifestEncodeRoundTrips(t *testing.T) {
	t.Parallel()
	for _, argv := range [][]string{
		{"a", "\u2028\u2029", "<script>&amp;", `"quoted" \back\slash`, "\t\n\r", "\x01\x7f", "ü ✓ 🚀"},
		{"spool\xffer"},
		{"\xed\xa0\x80"}, // a UTF-16 surrogate encoded as UTF-8
	} {
		m := executeManifest()
		m.Command = argv
		enc, err := m.Encode()
		if err != nil {
			continue // refused up front is fine
		}
		back, err := DecodeManifest(enc)
		if err != nil {
			t.Errorf("argv %q: Encode gave %s, which DecodeManifest refuses: %v", argv, enc, err)
			continue
		}
		if !reflect.DeepEqual(back.Command, argv) {
			t.Errorf("argv %q came back as %q", argv, back.Command)
		}
	}
}

func TestDecodeManifestRejects(t *testing.T) {
	t.Parallel()
	_, enc := mustID(t, launchManifest())

	t.Run("every prefix", func(t *testing.T) {
		t.Parallel()
		for i := range len(enc) {
			if _, err := DecodeManifest(enc[:i]); !errors.Is(err, ErrBadManifest) {
				t.Fatalf("prefix of %d bytes: error %v", i, err)
			}
		}
	})

	var fields map[string]json.RawMessage
	if err := json.Unmarshal(enc, &fields); err != nil {
		t.Fatal(err)
	}
	sorted, err := json.Marshal(fields) // keys in alphabetical order
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, enc, "", "  "); err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) []byte {
		if !bytes.Contains(enc, []byte(old)) {
			t.Fatalf("encoding %s lacks %s", enc, old)
		}
		return bytes.Replace(enc, []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name      string
		data      []byte
		canonical bool // refused as not canonical
		msg       string
	}{
		{"empty", nil, false, ""},
		{"null", []byte("null"), true, ""},
		{"empty object", []byte("{}"), true, ""},
		{"array", []byte("[]"), false, ""},
		{"NUL", []byte{0}, false, ""},
		{"text", []byte("not json at all"), false, ""},
		{"binary", randomBytes(64, 1), false, ""},
		{"unknown field", replace(`{"schema"`, `{"extra":true,"schema"`), false, `"extra"`},
		{"unknown field at end", append(bytes.Clone(enc[:len(enc)-1]), `,"evil":1}`...), false, `"evil"`},
		{"fields in another order", sorted, true, ""},
		{"indented", indented.Bytes(), true, ""},
		{"leading space", append([]byte(" "), enc...), true, ""},
		{"trailing newline", append(bytes.Clone(enc), '\n'), true, ""},
		{"trailing space", append(bytes.Clone(enc), ' '), true, ""},
		{"space after colon", replace(`"schema":1`, `"schema": 1`), true, ""},
		{"two values", append(bytes.Clone(enc), enc...), false, "trailing data"},
		{"trailing bracket", append(bytes.Clone(enc), ']'), true, ""},
		{"escaped letter", replace(`"agent"`, `"\u0061gent"`), true, ""},
		{"key in upper case", replace(`"schema"`, `"Schema"`), true, ""},
		{"duplicate key", replace(`{"schema":1`, `{"schema":1,"schema":1`), true, ""},
		{"float priority", replace(`"priority":5`, `"priority":5.0`), false, ""},
		{"exponent priority", replace(`"priority":5`, `"priority":5e0`), false, ""},
		{"string priority", replace(`"priority":5`, `"priority":"5"`), false, ""},
		{"empty optional list", replace(`"uninstall":["/usr/bin/agent-uninstall"]`, `"uninstall":[]`), true, ""},
		{"null optional list", replace(`"uninstall":["/usr/bin/agent-uninstall"]`, `"uninstall":null`), true, ""},
		{"escaped HTML", replace(`<&>`, `\u003c\u0026\u003e`), true, ""},
		{"too big", append(bytes.Clone(enc), bytes.Repeat([]byte(" "), MaxManifestBytes)...), false, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeManifest(tt.data)
			checkErr(t, err, ErrBadManifest)
			if tt.canonical {
				checkErr(t, err, ErrNotCanonical)
			}
			if tt.msg != "" {
				checkErr(t, err, ErrBadManifest, tt.msg)
			}
		})
	}
}

func TestDecodeManifestFor(t *testing.T) {
	t.Parallel()
	idLaunch, encLaunch := mustID(t, launchManifest())
	idStore, _ := mustID(t, storeManifest())
	parse := func(s string) cid.Cid {
		c, err := ParseCID(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		id   cid.Cid
		data []byte
		want error
	}{
		{"its own ID", parse(idLaunch), encLaunch, nil},
		{"another manifest's ID", parse(idStore), encLaunch, ErrDigestMismatch},
		{"one byte changed", parse(idLaunch), bytes.Replace(encLaunch, []byte(`"priority":5`), []byte(`"priority":6`), 1), ErrDigestMismatch},
		{"undefined ID", cid.Undef, encLaunch, ErrBadCID},
		{"dag-pb ID", cid.NewCidV1(cid.DagProtobuf, parse(idLaunch).Hash()), encLaunch, ErrBadCID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := DecodeManifestFor(tt.id, tt.data)
			if tt.want == nil {
				if err != nil || m == nil {
					t.Fatalf("DecodeManifestFor = %v, %v", m, err)
				}
				return
			}
			checkErr(t, err, tt.want)
			if m != nil {
				t.Errorf("refused manifest returned: %+v", m)
			}
		})
	}
}

func TestManifestFragments(t *testing.T) {
	t.Parallel()
	m := launchManifest()
	cids := m.FragmentCIDs()
	if len(cids) != len(m.Fragments) {
		t.Fatalf("%d CIDs from %d fragments", len(cids), len(m.Fragments))
	}
	for i, c := range cids {
		if c.String() != m.Fragments[i] {
			t.Errorf("fragment %d: %s, want %s", i, c, m.Fragments[i])
		}
	}
	var total int64
	for i := range m.Fragments {
		n := m.FragmentLen(i)
		if n <= 0 || n > int64(m.FragmentSize) {
			t.Errorf("fragment %d: length %d", i, n)
		}
		total += n
	}
	if total != m.Size {
		t.Errorf("fragment lengths add to %d, size %d", total, m.Size)
	}
	if got := m.FragmentLen(len(m.Fragments) - 1); got != 1 {
		t.Errorf("last fragment length %d, want 1", got)
	}
}

func TestDebManifestValidate(t *testing.T) {
	t.Parallel()
	m := launchManifest()
	m.Action, m.Command, m.Uninstall, m.Name, m.Version, m.OS = ActionDeb, nil, nil, "hello", "1:2.10-3+deb12u1~bpo1", "linux"
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mut func(m *Manifest)
		msg string
	}{
		{func(m *Manifest) { m.Version = "v1.0" }, `version "v1.0": not a Debian version`},
		{func(m *Manifest) { m.Command = []string{"dpkg", "-i"} }, "action deb takes no command"},
		{func(m *Manifest) { m.Uninstall = []string{"dpkg", "-r"} }, "action deb takes no command or uninstall"},
		{func(m *Manifest) { m.OS = "windows" }, `os "windows": a Debian package is for linux`},
		{func(m *Manifest) { m.Size, m.Digest, m.FragmentSize, m.Fragments = 0, "", 0, nil }, "action deb needs the .deb"},
	} {
		m := launchManifest()
		m.Action, m.Command, m.Uninstall, m.Version, m.OS = ActionDeb, nil, nil, "1.0-1", "linux"
		tt.mut(m)
		checkErr(t, m.Validate(), ErrBadManifest, tt.msg)
	}
	// Other actions keep the stricter version rule.
	m = launchManifest()
	m.Version = "1:2.0"
	checkErr(t, m.Validate(), ErrBadManifest, `version "1:2.0"`)
}

func TestManifestSucceeded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		codes []int64
		ok    []int
		fail  []int
		list  string
	}{
		{nil, []int{0, 3010, 1641}, []int{1, 3, 255, -1}, "0 (and 3010, 1641: reboot needed)"},
		{[]int64{0, 2}, []int{0, 2, 3010}, []int{1, 3}, "0, 2 (and 3010, 1641: reboot needed)"},
		{[]int64{17}, []int{17, 1641}, []int{0}, "17 (and 3010, 1641: reboot needed)"},
	} {
		m := executeManifest()
		m.SuccessCodes = tc.codes
		for _, c := range tc.ok {
			if !m.Succeeded(c) {
				t.Errorf("codes %v: %d not a success", tc.codes, c)
			}
		}
		for _, c := range tc.fail {
			if m.Succeeded(c) {
				t.Errorf("codes %v: %d a success", tc.codes, c)
			}
		}
		if got := m.SuccessCodeList(); got != tc.list {
			t.Errorf("codes %v: list %q, want %q", tc.codes, got, tc.list)
		}
	}
	// A manifest that declares none encodes as before the field existed.
	b, err := executeManifest().Encode()
	if err != nil || strings.Contains(string(b), "success_codes") {
		t.Errorf("encoding without success codes: %s %v", b, err)
	}
	m := executeManifest()
	m.SuccessCodes = []int64{0, 2}
	b, err = m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeManifest(b)
	if err != nil || !slices.Equal(back.SuccessCodes, []int64{0, 2}) {
		t.Errorf("round trip: %v %v", back, err)
	}
}
