//go:build unix

package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// TestInstallOne runs one package per case through a fresh runner.
func TestInstallOne(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// pkg builds the package; it may tamper with the fixture.
		pkg func(f *fixture) Package
		// timeout is the order's Timeout.
		timeout time.Duration
		// maxBytes, when set, is the runner's archive size limit.
		maxBytes   int64
		want       core.State
		exit       int
		wantMarked bool
		started    bool
		check      func(t *testing.T, f *fixture, res Result)
	}{{
		name: "launch runs the command in the extracted archive",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "launch", Action: core.ActionLaunch,
				Command: f.sh(`cp payload.txt "$1/marker" && echo "ran $RELAYMESH_PACKAGE_NAME in $RELAYMESH_PACKAGE_DIR for $RELAYMESH_ORDER_ID on $RELAYMESH_NODE_ID"; echo "$RELAYMESH_PACKAGE_ID" > "$1/id"; pwd > "$1/pwd"`)},
				tarGz(f.t, file{name: "payload.txt", body: "hello"}, file{name: "big.bin", body: noise(200 << 10)}))
		},
		want: core.StateSuccess, exit: 0, wantMarked: true, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if got := f.read("marker"); got != "hello" {
				t.Errorf("marker %q, want hello", got)
			}
			if got := f.read("id"); got != res.Package {
				t.Errorf("RELAYMESH_PACKAGE_ID %q, want %q", got, res.Package)
			}
			pwd := f.read("pwd")
			if !strings.HasPrefix(pwd, f.tmp+string(filepath.Separator)) {
				t.Errorf("command ran in %s, want a dir under %s", pwd, f.tmp)
			}
			if want := "ran launch in " + pwd + " for order-1 on node-1"; !strings.Contains(res.Output, want) {
				t.Errorf("output %q, want it to hold %q", res.Output, want)
			}
		},
	}, {
		name: "an exit code that is not a success code is ERR_EXECUTE with the code, not marked installed",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "exit3", Action: core.ActionLaunch, Command: f.sh(`echo partial; exit 3`)},
				tarGz(f.t, file{name: "a", body: "a"}))
		},
		want: core.ErrExecute, exit: 3, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if res.Output != "partial\n" {
				t.Errorf("output %q, want the command's", res.Output)
			}
			if !strings.Contains(res.Detail, "exit code 3") || !strings.Contains(res.Detail, "success codes are 0 ") {
				t.Errorf("detail %q: want the code and the success codes", res.Detail)
			}
		},
	}, {
		name: "a declared success code is SUCCESS and installed",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "exit3ok", Action: core.ActionExecute, Command: f.sh(`exit 3`), SuccessCodes: []int64{0, 3}}, nil)
		},
		want: core.StateSuccess, exit: 3, wantMarked: true, started: true,
	}, {
		name: "declared success codes replace 0",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "only2", Action: core.ActionExecute, Command: f.sh(`exit 0`), SuccessCodes: []int64{2}}, nil)
		},
		want: core.ErrExecute, exit: 0, started: true,
	}, {
		name: "order timeout kills the process group",
		pkg: func(f *fixture) Package {
			// The background sleep holds the output pipe: only a group
			// kill lets the run end before it.
			return f.pkg(core.Manifest{Name: "slow", Action: core.ActionExecute, TimeoutSec: 3600,
				Command: f.sh(`sleep 60 & echo started; sleep 60`)}, nil)
		},
		timeout: 300 * time.Millisecond,
		want:    core.ErrTimeout, exit: -1, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if !strings.Contains(res.Detail, "order timeout") || res.Output != "started\n" {
				t.Errorf("detail %q output %q", res.Detail, res.Output)
			}
		},
	}, {
		name: "missing fragment is ERR_BUILD",
		pkg: func(f *fixture) Package {
			p := f.pkg(core.Manifest{Name: "gap", Action: core.ActionLaunch, Command: f.sh(`touch "$1/ran"`)},
				tarGz(f.t, file{name: "big.bin", body: noise(200 << 10)}))
			f.frags.del(p.Manifest.FragmentCIDs()[1])
			return p
		},
		want: core.ErrBuild, exit: -1, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if f.exists("ran") || !strings.Contains(res.Detail, "fragment 2 of") {
				t.Errorf("ran %v, detail %q", f.exists("ran"), res.Detail)
			}
		},
	}, {
		name: "tampered fragment is ERR_BAD_DIGEST",
		pkg: func(f *fixture) Package {
			p := f.pkg(core.Manifest{Name: "tampered", Action: core.ActionLaunch, Command: f.sh(`touch "$1/ran"`)},
				tarGz(f.t, file{name: "big.bin", body: noise(200 << 10)}))
			c := p.Manifest.FragmentCIDs()[0]
			b, _ := f.frags.Get(c)
			b = []byte(string(b))
			b[100] ^= 1
			f.frags.put(c, b)
			return p
		},
		want: core.ErrBadDigestSt, exit: -1, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if f.exists("ran") || !strings.Contains(res.Detail, "fragment 1 of") {
				t.Errorf("ran %v, detail %q", f.exists("ran"), res.Detail)
			}
		},
	}, {
		name: "wrong digest in the manifest is ERR_BAD_DIGEST",
		pkg: func(f *fixture) Package {
			p := f.pkg(core.Manifest{Name: "digest", Action: core.ActionLaunch, Command: f.sh(`touch "$1/ran"`)},
				tarGz(f.t, file{name: "a", body: "a"}))
			p.Manifest.Digest = "sha256:" + strings.Repeat("ab", 32)
			return pkgOf(f.t, p.Manifest)
		},
		want: core.ErrBadDigestSt, exit: -1, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if f.exists("ran") || !strings.Contains(res.Detail, "archive digest") {
				t.Errorf("ran %v, detail %q", f.exists("ran"), res.Detail)
			}
		},
	}, {
		name: "wrong size in the manifest is ERR_BAD_DIGEST",
		pkg: func(f *fixture) Package {
			p := f.pkg(core.Manifest{Name: "size", Action: core.ActionLaunch, Command: f.sh(`touch "$1/ran"`)},
				tarGz(f.t, file{name: "a", body: "a"}))
			p.Manifest.Size++
			return pkgOf(f.t, p.Manifest)
		},
		want: core.ErrBadDigestSt, exit: -1, started: true,
	}, {
		name: "archive escaping with .. is ERR_DOWNLOAD_PACK",
		pkg: func(f *fixture) Package {
			// tmp/relaymesh-*/pkg/../../../x would be node/x.
			return f.pkg(core.Manifest{Name: "evil", Action: core.ActionLaunch, Command: f.sh(`touch "$1/ran"`)},
				tarGz(f.t, file{name: "ok.txt", body: "ok"}, file{name: "../../../x", body: "pwned"}, file{name: "../x", body: "pwned"}))
		},
		want: core.ErrDownloadPack, exit: -1, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if !strings.Contains(res.Detail, "unsafe archive") || !strings.Contains(res.Detail, "../../../x") {
				t.Errorf("detail %q, want the reason", res.Detail)
			}
			if f.exists("ran") {
				t.Error("the command ran")
			}
			if _, err := os.Stat(filepath.Join(f.base, "node", "x")); err == nil {
				t.Error("the archive wrote outside its directory")
			}
		},
	}, {
		name: "archive over the size limit is ERR_DOWNLOAD_PACK",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "bomb", Action: core.ActionLaunch, Command: f.sh(`touch "$1/ran"`)},
				tarGz(f.t, file{name: "zeros", body: strings.Repeat("\x00", 2<<20)}))
		},
		maxBytes: 1 << 20,
		want:     core.ErrDownloadPack, exit: -1, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if !strings.Contains(res.Detail, "too large") {
				t.Errorf("detail %q", res.Detail)
			}
		},
	}, {
		name: "store creates the path and puts the files there",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "store", Action: core.ActionStore, StorePath: f.path("store/deep")},
				tarGz(f.t, file{name: "dir/file.txt", body: "stored"}))
		},
		want: core.StateSuccess, exit: 0, wantMarked: true, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if got := f.read("store/deep/dir/file.txt"); got != "stored" {
				t.Errorf("stored file %q", got)
			}
			if st, err := os.Stat(f.path("store/deep")); err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("store path: %v %v", st, err)
			}
		},
	}, {
		name: "store with a command runs it in the store path",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "storecmd", Action: core.ActionStore, StorePath: f.path("store"),
				Command: []string{"sh", "-c", `cat file.txt; echo " $RELAYMESH_PACKAGE_DIR"`}},
				tarGz(f.t, file{name: "file.txt", body: "here"}))
		},
		want: core.StateSuccess, exit: 0, wantMarked: true, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if want := "here " + f.path("store") + "\n"; res.Output != want {
				t.Errorf("output %q, want %q", res.Output, want)
			}
		},
	}, {
		name: "execute without archive runs in an empty dir",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "exec", Action: core.ActionExecute,
				Command: f.sh(`test -z "$(ls -A)" && test "$PWD" = "$RELAYMESH_PACKAGE_DIR" && touch "$1/ran"`)}, nil)
		},
		want: core.StateSuccess, exit: 0, wantMarked: true, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if !f.exists("ran") {
				t.Errorf("command did not run as expected: %q", res.Output)
			}
		},
	}, {
		name: "execute with an archive runs in the extracted dir",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "execarch", Action: core.ActionExecute,
				Command: []string{"sh", "./setup.sh"}},
				tarGz(f.t, file{name: "setup.sh", body: "echo from-archive\n", mode: 0o755}))
		},
		want: core.StateSuccess, exit: 0, wantMarked: true, started: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if res.Output != "from-archive\n" {
				t.Errorf("output %q", res.Output)
			}
		},
	}, {
		name: "command that cannot start is ERR_EXECUTE",
		pkg: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "nocmd", Action: core.ActionExecute,
				Command: []string{"/nonexistent/relaymesh-no-such-program"}}, nil)
		},
		want: core.ErrExecute, exit: -1, started: true,
	}, {
		name: "already installed is ERR_ALREADY_SETUP and runs nothing",
		pkg: func(f *fixture) Package {
			p := f.pkg(core.Manifest{Name: "again", Action: core.ActionExecute, Command: f.sh(`touch "$1/ran"`)}, nil)
			if err := f.inst.MarkInstalled(p, "order-0"); err != nil {
				f.t.Fatal(err)
			}
			return p
		},
		want: core.ErrAlreadySetup, exit: -1, wantMarked: true,
		check: func(t *testing.T, f *fixture, res Result) {
			if f.exists("ran") {
				t.Error("the command ran")
			}
			if o, _ := f.inst.order(res.Package); o != "order-0" {
				t.Errorf("installed record now names %q", o)
			}
		},
	}, {
		name: "manifest that is not the package ID is ERR_BAD_ID",
		pkg: func(f *fixture) Package {
			p := f.pkg(core.Manifest{Name: "swapped", Action: core.ActionExecute, Command: f.sh(`touch "$1/ran"`)}, nil)
			other := f.pkg(core.Manifest{Name: "other", Action: core.ActionExecute, Command: f.sh(`true`)}, nil)
			p.ID = other.ID
			return p
		},
		want: core.ErrBadID, exit: -1,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := tc.pkg(f)
			if tc.maxBytes > 0 {
				f.r.cfg.Limits.MaxBytes = tc.maxBytes
			}
			start := time.Now()
			got := f.install(t.Context(), Request{OrderID: "order-1", Packages: []Package{p}, Timeout: tc.timeout})
			if tc.timeout > 0 && time.Since(start) > 10*time.Second {
				t.Errorf("timeout %v took %v", tc.timeout, time.Since(start))
			}
			assertStates(t, got.results, tc.want)
			res := got.results[0]
			if res.ExitCode != tc.exit || res.Package != p.ID {
				t.Errorf("result %+v, want exit %d for %s", res, tc.exit, p.ID)
			}
			if len(got.reported) != 1 || got.reported[0] != res {
				t.Errorf("reported %+v, want the result once", got.reported)
			}
			if started := len(got.started) == 1; started != tc.started {
				t.Errorf("onStart calls %v, want started %v", got.started, tc.started)
			}
			if _, marked := f.inst.order(p.ID); marked != tc.wantMarked {
				t.Errorf("marked installed %v, want %v", marked, tc.wantMarked)
			}
			if got.rebooted || f.exists("rebooted") {
				t.Error("rebooted under the default policy")
			}
			if tc.check != nil {
				tc.check(t, f, res)
			}
		})
	}
}

// bulkPkgs returns a launch package whose install and uninstall scripts come
// from its archive and leave markers, one that fails as fail says, and one
// that would succeed.
func bulkPkgs(f *fixture, fail func(f *fixture) Package) []Package {
	first := f.pkg(core.Manifest{Name: "first", Action: core.ActionLaunch,
		Command:   []string{"sh", "install.sh", f.out},
		Uninstall: []string{"sh", "uninstall.sh", f.out}},
		tarGz(f.t,
			file{name: "install.sh", body: `touch "$1/first-installed"`},
			file{name: "uninstall.sh", body: `rm "$1/first-installed" && echo "$RELAYMESH_PACKAGE_NAME" > "$1/first-uninstalled"`}))
	third := f.pkg(core.Manifest{Name: "third", Action: core.ActionExecute, Command: f.sh(`touch "$1/third"`)}, nil)
	return []Package{first, fail(f), third}
}

func TestInstallBulk(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		fail  func(f *fixture) Package
		state core.State
	}{{
		name: "non-zero exit",
		fail: func(f *fixture) Package {
			return f.pkg(core.Manifest{Name: "second", Action: core.ActionExecute, Command: f.sh(`exit 1`)}, nil)
		},
		state: core.ErrExecute,
	}, {
		name: "missing fragment",
		fail: func(f *fixture) Package {
			p := f.pkg(core.Manifest{Name: "second", Action: core.ActionLaunch, Command: f.sh(`true`)},
				tarGz(f.t, file{name: "a", body: "a"}))
			f.frags.del(p.Manifest.FragmentCIDs()[0])
			return p
		},
		state: core.ErrBuild,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			pkgs := bulkPkgs(f, tc.fail)
			got := f.install(t.Context(), Request{OrderID: "bulk-1", Packages: pkgs, Mode: core.ModeBulk})

			assertStates(t, got.results, core.ErrAborted, tc.state, core.ErrAborted)
			if d := got.results[0].Detail; d != "rolled back" {
				t.Errorf("first: detail %q, want rolled back", d)
			}
			if d := got.results[2].Detail; d != "bulk: stopped after failure of second 1.0" {
				t.Errorf("third: detail %q", d)
			}
			if f.read("first-uninstalled") != "first" || f.exists("first-installed") {
				t.Error("first's uninstall did not run")
			}
			if f.exists("third") {
				t.Error("third ran after the failure")
			}
			for _, p := range pkgs {
				if _, ok := f.inst.order(p.ID); ok {
					t.Errorf("%s still marked installed", p.Manifest.Name)
				}
			}
			if want := []string{pkgs[0].ID, pkgs[1].ID}; !slices.Equal(got.started, want) {
				t.Errorf("started %v, want %v", got.started, want)
			}
			// first SUCCESS, second, third ERR_ABORTED, then first again.
			if len(got.reported) != 4 || got.reported[0].State != core.StateSuccess ||
				got.reported[3].Package != pkgs[0].ID || got.reported[3] != got.results[0] {
				t.Errorf("reported %+v", got.reported)
			}
		})
	}
}

func TestInstallBulkRollbackLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	noUninstall := f.pkg(core.Manifest{Name: "keep", Action: core.ActionExecute, Command: f.sh(`true`)}, nil)
	badUninstall := f.pkg(core.Manifest{Name: "stuck", Action: core.ActionExecute, Command: f.sh(`true`),
		Uninstall: f.sh(`exit 4`)}, nil)
	already := f.pkg(core.Manifest{Name: "old", Action: core.ActionExecute, Command: f.sh(`true`), Uninstall: f.sh(`touch "$1/old-removed"`)}, nil)
	if err := f.inst.MarkInstalled(already, "order-0"); err != nil {
		t.Fatal(err)
	}
	failing := f.pkg(core.Manifest{Name: "bad", Action: core.ActionExecute, Command: f.sh(`exit 2`)}, nil)

	got := f.install(t.Context(), Request{OrderID: "bulk-2", Mode: core.ModeBulk,
		Packages: []Package{noUninstall, badUninstall, already, failing}})
	assertStates(t, got.results, core.ErrAborted, core.ErrAborted, core.ErrAlreadySetup, core.ErrExecute)
	for i, want := range []string{"no uninstall command", "uninstall exited 4"} {
		if d := got.results[i].Detail; !strings.Contains(d, want) || !strings.Contains(d, "stays installed") {
			t.Errorf("%d: detail %q, want %q", i, d, want)
		}
		if _, ok := f.inst.order(got.results[i].Package); !ok {
			t.Errorf("%d: unmarked though still installed", i)
		}
	}
	if f.exists("old-removed") {
		t.Error("a package installed by an earlier order was rolled back")
	}
}

func TestInstallOneByOne(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fails := f.pkg(core.Manifest{Name: "fails", Action: core.ActionExecute, Command: f.sh(`exit 1`), Uninstall: f.sh(`touch "$1/undone"`)}, nil)
	broken := f.pkg(core.Manifest{Name: "broken", Action: core.ActionLaunch, Command: f.sh(`true`)},
		tarGz(f.t, file{name: "a", body: "a"}))
	f.frags.del(broken.Manifest.FragmentCIDs()[0])
	ok := f.pkg(core.Manifest{Name: "ok", Action: core.ActionExecute, Command: f.sh(`touch "$1/ok"`), Uninstall: f.sh(`touch "$1/undone"`)}, nil)

	got := f.install(t.Context(), Request{OrderID: "obo", Mode: core.ModeOneByOne, Packages: []Package{fails, broken, ok}})
	assertStates(t, got.results, core.ErrExecute, core.ErrBuild, core.StateSuccess)
	if got.results[0].ExitCode != 1 || !f.exists("ok") || f.exists("undone") {
		t.Errorf("results %+v", got.results)
	}
	if len(got.started) != 3 || len(got.reported) != 3 {
		t.Errorf("started %v, reported %d", got.started, len(got.reported))
	}
	if o, marked := f.inst.order(ok.ID); !marked || o != "obo" {
		t.Errorf("ok marked %v by %q", marked, o)
	}
}

func TestInstallReboot(t *testing.T) {
	t.Parallel()
	// Unix exit statuses stop at 255, so the Windows codes 3010 and 1641
	// are covered by TestExitCodes; here the command asks for a reboot
	// through the reboot-required file.
	const ask = `touch "$1/reboot-required"`
	cases := []struct {
		policy core.RebootPolicy
		script string
		want   bool
	}{
		{"", ask, false},
		{core.RebootNever, ask, false},
		{core.RebootAlways, "true", true},
		{core.RebootAlways, "exit 5", true},
		{core.RebootIfNeeded, "true", false},
		{core.RebootIfNeeded, "exit 7", false},
		{core.RebootIfNeeded, ask, true},
	}
	for _, tc := range cases {
		t.Run(string(tc.policy)+"/"+tc.script, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := f.pkg(core.Manifest{Name: "p", Action: core.ActionExecute, Command: f.sh(tc.script)}, nil)
			got := f.install(t.Context(), Request{OrderID: "reboot", Packages: []Package{p}, Reboot: tc.policy})
			if got.rebooted != tc.want || f.exists("rebooted") != tc.want {
				t.Errorf("rebooted %v, marker %v, want %v", got.rebooted, f.exists("rebooted"), tc.want)
			}
		})
	}
}

// TestInstallOrderBudget: the order's timeout is shared by its packages.
func TestInstallOrderBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	slow := f.pkg(core.Manifest{Name: "slow", Action: core.ActionExecute, Command: f.sh(`sleep 60`)}, nil)
	next := f.pkg(core.Manifest{Name: "next", Action: core.ActionExecute, Command: f.sh(`touch "$1/next"`)}, nil)
	got := f.install(t.Context(), Request{OrderID: "budget", Packages: []Package{slow, next}, Timeout: 200 * time.Millisecond})
	assertStates(t, got.results, core.ErrTimeout, core.ErrTimeout)
	if f.exists("next") || len(got.started) != 1 || !strings.Contains(got.results[1].Detail, "before the install started") {
		t.Errorf("next ran %v, started %v, detail %q", f.exists("next"), got.started, got.results[1].Detail)
	}
}

// TestInstallCancel cancels the order while a command runs: the command's
// group is killed and the rest is aborted.
func TestInstallCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fifo := f.path("fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Opening blocks until the command opens the fifo to write.
		b, err := os.ReadFile(fifo)
		if err != nil || string(b) != "running\n" {
			t.Errorf("fifo: %q %v", b, err)
		}
		cancel()
	}()
	long := f.pkg(core.Manifest{Name: "long", Action: core.ActionExecute, Command: f.sh(`echo running > "$1/fifo"; sleep 60`)}, nil)
	next := f.pkg(core.Manifest{Name: "next", Action: core.ActionExecute, Command: f.sh(`touch "$1/next"`)}, nil)
	got := f.install(ctx, Request{OrderID: "cancel", Packages: []Package{long, next}, Reboot: core.RebootAlways})
	// Should the command never have opened the fifo, release the reader.
	if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		w.Close()
	}
	<-done
	assertStates(t, got.results, core.ErrAborted, core.ErrAborted)
	if f.exists("next") || got.rebooted || f.exists("rebooted") {
		t.Errorf("ran after cancel: next %v, rebooted %v", f.exists("next"), got.rebooted)
	}

	// An order whose context is already done runs nothing.
	got = f.install(ctx, Request{OrderID: "late", Packages: []Package{next}})
	assertStates(t, got.results, core.ErrAborted)
	if len(got.started) != 0 {
		t.Errorf("started %v", got.started)
	}
}

func TestInstallBadRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.pkg(core.Manifest{Name: "p", Action: core.ActionExecute, Command: f.sh(`touch "$1/ran"`)}, nil)
	for _, req := range []Request{
		{Packages: []Package{p}, Mode: "sideways"},
		{Packages: []Package{p}, Reboot: "sometimes"},
		{Packages: []Package{p}, Timeout: -time.Second},
	} {
		got := f.install(t.Context(), req)
		assertStates(t, got.results, core.ErrAborted)
		if !strings.HasPrefix(got.results[0].Detail, "runner: invalid request") {
			t.Errorf("detail %q", got.results[0].Detail)
		}
	}
	got := f.install(t.Context(), Request{Packages: []Package{{ID: p.ID}}})
	assertStates(t, got.results, core.ErrBadID)
	if f.exists("ran") {
		t.Error("ran")
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	frags, inst := &memFrags{m: map[cid.Cid][]byte{}}, &memInstalled{m: map[string]string{}}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{TempDir: filepath.Join(dir, "new")}, true},
		{"relative TempDir", Config{TempDir: "tmp"}, false},
		{"bad Env", Config{TempDir: dir, Env: []string{"NOEQUALS"}}, false},
		{"negative timeout", Config{TempDir: dir, DefaultTimeout: -time.Second}, false},
		{"empty reboot program", Config{TempDir: dir, RebootCommand: []string{""}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg, frags, inst)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Errorf("New: %v, want ok %v", err, tc.ok)
			}
		})
	}
	if _, err := New(Config{TempDir: dir}, nil, inst); !errors.Is(err, ErrConfig) {
		t.Errorf("nil Fragments: %v", err)
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 3000) // 6000 bytes
	for _, s := range []string{"short", long, "bad \xff byte"} {
		got := clip(s)
		if len(got) > maxDetail || !strings.HasPrefix(s, strings.TrimSuffix(got, "…")) && s != "bad \xff byte" {
			t.Errorf("clip(%d bytes) = %d bytes", len(s), len(got))
		}
		if !utf8Valid(got) {
			t.Errorf("clip made invalid UTF-8")
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code              int
		installed, reboot bool
	}{
		{0, true, false}, {1, false, false}, {3, false, false},
		{3010, true, true}, {1641, true, true}, {194, false, false},
	} {
		if installedCode(tc.code) != tc.installed || rebootCode(tc.code) != tc.reboot {
			t.Errorf("code %d: installed %v reboot %v, want %v %v", tc.code,
				installedCode(tc.code), rebootCode(tc.code), tc.installed, tc.reboot)
		}
	}
	for st, fails := range map[core.State]bool{core.StateSuccess: false, core.ErrAlreadySetup: false, core.ErrExecute: true, core.ErrClean: true, core.ErrTimeout: true} {
		if failsBulk(Result{State: st}) != fails {
			t.Errorf("%s: failsBulk %v, want %v", st, !fails, fails)
		}
	}
}

// A package installed before is ERR_ALREADY_SETUP, and installed again
// when the order says force.
func TestForceInstallsAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.pkg(core.Manifest{Name: "again", Action: core.ActionExecute, Command: f.sh(`echo x >> "$1/runs"`)}, nil)
	if err := f.inst.MarkInstalled(p, "order-0"); err != nil {
		t.Fatal(err)
	}
	got := f.install(t.Context(), Request{OrderID: "plain", Packages: []Package{p}})
	assertStates(t, got.results, core.ErrAlreadySetup)
	if f.exists("runs") || !strings.Contains(got.results[0].Detail, "--force") {
		t.Errorf("already installed: ran %v, detail %q", f.exists("runs"), got.results[0].Detail)
	}
	got = f.install(t.Context(), Request{OrderID: "forced", Packages: []Package{p}, Force: true})
	assertStates(t, got.results, core.StateSuccess)
	if f.read("runs") != "x" {
		t.Errorf("forced install ran %q times, want once", f.read("runs"))
	}
	if o, ok := f.inst.order(p.ID); !ok || o != "forced" {
		t.Errorf("installed record %q %v, want the forced order", o, ok)
	}
}
