package core

import (
	"strings"
	"testing"
	"time"
)

func scanReport() *ScanReport {
	return &ScanReport{
		Schema: ScanSchema, NodeID: "node-a", Seq: 7, Time: t0, Order: "s-1",
		Inventory: Inventory{
			Manager: "dpkg", OS: OSRelease{ID: "debian", VersionID: "12"}, Kernel: "6.1.0-18-amd64",
			InstalledCount: 2, Installed: []Package{{Name: "foo", Version: "1.0", Arch: "all"}, {Name: "bar", Version: "1.0"}},
			Updates: []Update{{Name: "bar", Installed: "1.0", Candidate: "1.0+sec1", Security: true, Suites: []string{"stable-security"}}},
		},
	}
}

func scanOrder() *Order {
	o := cancelOrder()
	o.Kind, o.ID, o.Cancels = KindScan, "s-1", ""
	return o
}

func TestScanReportRoundTrip(t *testing.T) {
	t.Parallel()
	env, err := SignScan(scanReport(), nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	env2, err := DecodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenScan(env2, "node-a", pubOf(nodeKey))
	if err != nil {
		t.Fatal(err)
	}
	if r.SecurityCount() != 1 || r.Installed[0].Name != "foo" || r.Order != "s-1" {
		t.Fatalf("got %+v", r)
	}
	if _, err := OpenScan(env2, "node-b", pubOf(nodeKey)); err == nil {
		t.Fatal("a report naming another node opened")
	}
	if _, err := OpenScan(env2, "node-a", pubOf(otherKey)); err == nil {
		t.Fatal("opened with the wrong key")
	}
	// A scan report's signature is not a status report's.
	if _, err := OpenStatus(env2, "node-a", pubOf(nodeKey)); err == nil {
		t.Fatal("scan report opened as a status report")
	}
}

func TestScanReportValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		mut  func(r *ScanReport)
		msg  string
	}{
		{"schema", func(r *ScanReport) { r.Schema = 2 }, "schema 2"},
		{"no node", func(r *ScanReport) { r.NodeID = "" }, `node ""`},
		{"seq 0", func(r *ScanReport) { r.Seq = 0 }, "sequence 0"},
		{"local time", func(r *ScanReport) { r.Time = t0.In(time.FixedZone("X", 3600)) }, "want a UTC time"},
		{"bad order", func(r *ScanReport) { r.Order = "a b" }, `order "a b"`},
		{"manager", func(r *ScanReport) { r.Manager = "rpm" }, `manager "rpm"`},
		{"unnamed package", func(r *ScanReport) { r.Installed[0].Name = "" }, "without a name"},
		{"long version", func(r *ScanReport) { r.Installed[0].Version = strings.Repeat("1", 300) }, "at most 256 bytes"},
		{"update without candidate", func(r *ScanReport) { r.Updates[0].Candidate = "" }, `update "bar"`},
		{"too many updates", func(r *ScanReport) { r.Updates = make([]Update, MaxScanUpdates+1) }, "20001 updates"},
		{"bad utf8 kernel", func(r *ScanReport) { r.Kernel = "\xff" }, "kernel"},
	} {
		r := scanReport()
		tt.mut(r)
		checkErr(t, r.Validate(), ErrBadScan, tt.msg)
	}
	r := scanReport()
	r.Installed = make([]Package, 40_000)
	for i := range r.Installed {
		r.Installed[i] = Package{Name: strings.Repeat("p", 40), Version: strings.Repeat("1", 20)}
	}
	_, err := r.Encode()
	checkErr(t, err, ErrBadScan, "bytes encoded, at most 2097152")
}

func TestScanOrderValidate(t *testing.T) {
	t.Parallel()
	if err := scanOrder().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(o *Order){
		func(o *Order) { o.Packages = deployOrder().Packages },
		func(o *Order) { o.Mode = ModeBulk },
		func(o *Order) { o.Cancels = "dep-1" },
		func(o *Order) { o.Window = "Sat 02:00-04:00" },
	} {
		o := scanOrder()
		mut(o)
		checkErr(t, o.Validate(), ErrBadOrder, "a scan order carries only targets")
	}
	o := scanOrder()
	o.Kind = "rescan"
	checkErr(t, o.Validate(), ErrBadOrder, "want deploy, cancel, scan or gossip-key")
}

func FuzzDecodeScan(f *testing.F) {
	enc, err := scanReport().Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range canonicalSeeds(enc) {
		f.Add(s)
	}
	for _, s := range []string{"", "null", "{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeScan(data)
		if err != nil {
			if r != nil {
				t.Fatalf("report returned with error %v", err)
			}
			return
		}
		again, err := r.Encode()
		if err != nil || string(again) != string(data) {
			t.Fatalf("decoded report does not re-encode to its bytes: %v", err)
		}
	})
}
