// Package aptmirror is the coordinator's copy of the Debian repositories a
// patch deployment installs from. It fetches each repository's InRelease,
// checks its signature with the configured keyring (gpgv), fetches the
// package indexes the Release lists and checks each against the SHA256
// and size the signed Release gives, and fetches .deb files, each checked
// against the SHA256 and size its index gives: apt's own chain of trust,
// checked before anything is published to the mesh. The files then travel
// as relaymesh packages, so each crosses a site's WAN once; nodes never
// pull from the repository.
package aptmirror

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"pault.ag/go/debian/version"
)

var (
	ErrConfig       = errors.New("aptmirror: bad config")
	ErrUnreachable  = errors.New("aptmirror: repository unreachable")
	ErrBadSignature = errors.New("aptmirror: InRelease signature does not verify")
	ErrBadIndex     = errors.New("aptmirror: bad repository index")
	ErrHashMismatch = errors.New("aptmirror: hash mismatch")
	ErrNoPackage    = errors.New("aptmirror: no such package")
	ErrNoVersion    = errors.New("aptmirror: version not available")
)

// Repo is one apt source line: deb URL SUITE [COMPONENT…].
type Repo struct {
	// URL is the repository's base URL, as in the nodes' sources.list
	// (http://deb.debian.org/debian-security).
	URL string `yaml:"url"`
	// Suite is the distribution (bookworm-security), or a path ending in
	// "/" for a flat repository ("./").
	Suite string `yaml:"suite"`
	// Components of a suite (main); none for a flat repository.
	Components []string `yaml:"components"`
	// Architectures whose indexes are mirrored (default amd64).
	Architectures []string `yaml:"architectures"`
	// Keyring is the OpenPGP keyring (binary or armored .gpg/.asc file)
	// the InRelease signature must verify with; required.
	Keyring string `yaml:"keyring"`
}

// Config is the mirror's configuration (repositories: in the
// coordinator's config.yaml).
type Config struct {
	Repositories []Repo `yaml:"repositories"`
	// Gpgv is the gpgv binary (default gpgv).
	Gpgv string `yaml:"gpgv"`
	// Timeout bounds each HTTP request (default 5m).
	Timeout time.Duration `yaml:"timeout"`
}

func (r *Repo) flat() bool { return strings.HasSuffix(r.Suite, "/") }

func (r *Repo) String() string {
	return strings.TrimSpace(r.URL + " " + r.Suite + " " + strings.Join(r.Components, " "))
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	for i, r := range c.Repositories {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: repositories[%d] (%s): %s", ErrConfig, i, r.URL, fmt.Sprintf(format, a...))
		}
		u, err := url.Parse(r.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("url %q: want an http:// or https:// URL", r.URL)
		}
		if r.Suite == "" || strings.Contains(r.Suite, "..") && r.Suite != "./" {
			return bad("suite %q: want a suite such as bookworm-security, or ./ for a flat repository", r.Suite)
		}
		if r.flat() && len(r.Components) > 0 {
			return bad("a flat repository (suite %q) has no components", r.Suite)
		}
		if !r.flat() && len(r.Components) == 0 {
			return bad("suite %q needs components, such as [main]", r.Suite)
		}
		if r.Keyring == "" {
			return bad("keyring: required; the InRelease signature is checked with it (gpgv)")
		}
		if _, err := os.Stat(r.Keyring); err != nil {
			return bad("keyring %q: %v", r.Keyring, err)
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: timeout %s: must not be negative", ErrConfig, c.Timeout)
	}
	return nil
}

// Entry is one binary package of an index.
type Entry struct {
	Name, Version, Arch string
	Filename            string // relative to the repository URL
	Size                int64
	SHA256              string
	Depends             []string // the names in Depends and Pre-Depends (every alternative)
	Repo                *Repo
}

// ListFile is one file as apt keeps it in its lists dir.
type ListFile struct {
	Name string // apt's file name (URI-derived)
	Data []byte
}

// Snapshot is the verified state of every configured repository.
type Snapshot struct {
	Lists   []ListFile
	Date    time.Time // the newest Release date
	entries map[string][]*Entry
}

// Mirror fetches and verifies repository files.
type Mirror struct {
	cfg    Config
	client *http.Client
	cache  string // dir of verified .debs by SHA256; "" keeps none
}

// New returns a Mirror; cacheDir, when set, keeps verified .deb files so
// a second deployment does not fetch them again.
func New(cfg Config, cacheDir string) (*Mirror, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Gpgv == "" {
		cfg.Gpgv = "gpgv"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if len(cfg.Repositories) == 0 {
		cacheDir = ""
	}
	if cacheDir != "" {
		if err := os.MkdirAll(cacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: cache dir %s: %w", ErrConfig, cacheDir, err)
		}
	}
	return &Mirror{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, cache: cacheDir}, nil
}

// Configured reports whether any repository is configured.
func (m *Mirror) Configured() bool { return m != nil && len(m.cfg.Repositories) > 0 }

// base is the URL of the directory that holds the suite's InRelease.
func (r *Repo) base() string {
	u := strings.TrimSuffix(r.URL, "/")
	if r.flat() {
		s := strings.TrimSuffix(r.Suite, "/")
		if s == "." || s == "" {
			return u + "/"
		}
		return u + "/" + strings.TrimPrefix(s, "/") + "/"
	}
	return u + "/dists/" + r.Suite + "/"
}

// listName is the name apt gives, in its lists dir, to the file at the
// repository URL u (apt's URItoFileName: the URI without its scheme and
// credentials, '/' turned into '_'; a flat suite "./" keeps its ".").
func listName(r *Repo, rel string) string {
	u := strings.TrimSuffix(r.URL, "/") + "/"
	if r.flat() {
		u += r.Suite
	} else {
		u += "dists/" + r.Suite + "/"
	}
	u += rel
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if at := strings.IndexByte(u, '@'); at >= 0 && at < strings.IndexByte(u+"/", '/') {
		u = u[at+1:]
	}
	var b strings.Builder
	for _, ch := range u {
		switch {
		case ch == '/':
			b.WriteByte('_')
		case ch == '_' || ch == '%' || ch == '@' || ch == ' ' || ch < 0x20 || ch >= 0x7f:
			fmt.Fprintf(&b, "%%%02x", ch)
		default:
			b.WriteRune(ch)
		}
	}
	return b.String()
}

func (m *Mirror) get(ctx context.Context, u string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, u, err)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w: check the repository URL in config.yaml and that the coordinator reaches it", ErrUnreachable, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: HTTP %s", ErrUnreachable, u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, u, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrBadIndex, u, max)
	}
	return b, nil
}

// Caps of what the mirror reads.
const (
	maxRelease = 16 << 20
	maxIndex   = 512 << 20
	maxDeb     = 8 << 30
)

// Refresh fetches and verifies every repository's InRelease and indexes.
func (m *Mirror) Refresh(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{entries: map[string][]*Entry{}}
	for i := range m.cfg.Repositories {
		if err := m.refreshRepo(ctx, &m.cfg.Repositories[i], s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (m *Mirror) refreshRepo(ctx context.Context, r *Repo, s *Snapshot) error {
	inrel, err := m.get(ctx, r.base()+"InRelease", maxRelease)
	if err != nil {
		return err
	}
	signed, err := m.verify(ctx, r, inrel)
	if err != nil {
		return err
	}
	rel, err := parseRelease(signed)
	if err != nil {
		return fmt.Errorf("%w: %sInRelease: %w", ErrBadIndex, r.base(), err)
	}
	if !rel.validUntil.IsZero() && time.Now().After(rel.validUntil) {
		return fmt.Errorf("%w: %sInRelease expired at %s (Valid-Until): the repository is stale or replayed", ErrBadSignature, r.base(), rel.validUntil.Format(time.RFC3339))
	}
	if rel.date.After(s.Date) {
		s.Date = rel.date
	}
	s.Lists = append(s.Lists, ListFile{Name: listName(r, "InRelease"), Data: inrel})
	archs := r.Architectures
	if len(archs) == 0 {
		archs = []string{"amd64"}
	}
	var dirs []string
	if r.flat() {
		dirs = []string{""}
	} else {
		for _, c := range r.Components {
			for _, a := range archs {
				dirs = append(dirs, c+"/binary-"+a+"/")
			}
		}
	}
	for _, d := range dirs {
		plain := d + "Packages"
		data, err := m.fetchIndex(ctx, r, rel, plain)
		if err != nil {
			return err
		}
		s.Lists = append(s.Lists, ListFile{Name: listName(r, plain), Data: data})
		ents, err := parsePackages(data)
		if err != nil {
			return fmt.Errorf("%w: %s%s: %w", ErrBadIndex, r.base(), plain, err)
		}
		for _, e := range ents {
			e.Repo = r
			s.entries[e.Name] = append(s.entries[e.Name], e)
		}
	}
	return nil
}

// fetchIndex fetches the index plain (or its .gz), checks it against the
// signed Release and returns it uncompressed.
func (m *Mirror) fetchIndex(ctx context.Context, r *Repo, rel *release, plain string) ([]byte, error) {
	for _, name := range []string{plain, plain + ".gz"} {
		want, ok := rel.sha256[name]
		if !ok {
			continue
		}
		b, err := m.get(ctx, r.base()+name, maxIndex)
		if err != nil {
			return nil, err
		}
		if err := check(r.base()+name, b, want); err != nil {
			return nil, err
		}
		if name == plain {
			return b, nil
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%w: %s%s: %w", ErrBadIndex, r.base(), name, err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxIndex+1))
		if err != nil || len(out) > maxIndex {
			return nil, fmt.Errorf("%w: %s%s: cannot decompress: %v", ErrBadIndex, r.base(), name, err)
		}
		if w, ok := rel.sha256[plain]; ok {
			if err := check(r.base()+plain+" (from .gz)", out, w); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %sInRelease lists no SHA256 of %s or %s.gz", ErrBadIndex, r.base(), plain, plain)
}

type sized struct {
	hash string
	size int64
}

func check(what string, b []byte, want sized) error {
	sum := sha256.Sum256(b)
	got := hex.EncodeToString(sum[:])
	if int64(len(b)) != want.size || got != want.hash {
		return fmt.Errorf("%w: %s: %d bytes with SHA256 %s, the signed index says %d bytes with %s",
			ErrHashMismatch, what, len(b), got, want.size, want.hash)
	}
	return nil
}

// verify checks the clearsigned InRelease with gpgv and the repository's
// keyring, and returns the signed text (what gpgv says was signed, never
// the file's own text outside the signature).
func (m *Mirror) verify(ctx context.Context, r *Repo, inrel []byte) ([]byte, error) {
	out, err := os.CreateTemp("", "relaymesh-inrelease-*")
	if err != nil {
		return nil, err
	}
	out.Close()
	defer os.Remove(out.Name())
	cmd := exec.CommandContext(ctx, m.cfg.Gpgv, "--quiet", "--keyring", r.Keyring, "--output", out.Name()+".out", "-")
	defer os.Remove(out.Name() + ".out")
	cmd.Stdin = bytes.NewReader(inrel)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %sInRelease with keyring %s: %s", ErrBadSignature, r.base(), r.Keyring, lastLine(string(msg), err))
	}
	return os.ReadFile(out.Name() + ".out")
}

func lastLine(s string, err error) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

type release struct {
	date, validUntil time.Time
	sha256           map[string]sized
}

func parseRelease(b []byte) (*release, error) {
	rel := &release{sha256: map[string]sized{}}
	inSHA := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, " ") {
			if inSHA {
				f := strings.Fields(l)
				if len(f) != 3 {
					return nil, fmt.Errorf("SHA256 line %q: want hash size path", l)
				}
				n, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil || len(f[0]) != 64 {
					return nil, fmt.Errorf("SHA256 line %q: bad hash or size", l)
				}
				rel.sha256[f[2]] = sized{hash: strings.ToLower(f[0]), size: n}
			}
			continue
		}
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		inSHA = k == "SHA256"
		switch k {
		case "Date":
			rel.date, _ = time.Parse(time.RFC1123, strings.Replace(v, "UTC", "GMT", 1))
		case "Valid-Until":
			t, err := time.Parse(time.RFC1123, strings.Replace(v, "UTC", "GMT", 1))
			if err != nil {
				return nil, fmt.Errorf("Valid-Until %q: %w", v, err)
			}
			rel.validUntil = t
		}
	}
	if len(rel.sha256) == 0 {
		return nil, errors.New("no SHA256 section")
	}
	return rel, sc.Err()
}

func parsePackages(b []byte) ([]*Entry, error) {
	var out []*Entry
	for _, para := range strings.Split(string(b), "\n\n") {
		if strings.TrimSpace(para) == "" {
			continue
		}
		e := &Entry{}
		for _, l := range strings.Split(para, "\n") {
			if l == "" || l[0] == ' ' || l[0] == '\t' {
				continue
			}
			k, v, _ := strings.Cut(l, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "Package":
				e.Name = v
			case "Version":
				e.Version = v
			case "Architecture":
				e.Arch = v
			case "Filename":
				e.Filename = v
			case "Size":
				e.Size, _ = strconv.ParseInt(v, 10, 64)
			case "SHA256":
				e.SHA256 = strings.ToLower(v)
			case "Depends", "Pre-Depends":
				e.Depends = append(e.Depends, depNames(v)...)
			}
		}
		if e.Name == "" || e.Version == "" || e.Filename == "" || len(e.SHA256) != 64 || e.Size <= 0 {
			return nil, fmt.Errorf("package %q %q: Package, Version, Filename, Size and SHA256 are required", e.Name, e.Version)
		}
		if strings.HasPrefix(e.Filename, "/") || slices.Contains(strings.Split(e.Filename, "/"), "..") {
			return nil, fmt.Errorf("package %s: Filename %q leaves the repository", e.Name, e.Filename)
		}
		out = append(out, e)
	}
	return out, nil
}

// depNames are the package names a Depends field names.
func depNames(v string) []string {
	var out []string
	for _, alt := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '|' }) {
		name := strings.TrimSpace(alt)
		if i := strings.IndexAny(name, " (["); i >= 0 {
			name = name[:i]
		}
		name, _, _ = strings.Cut(name, ":")
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// Find returns the package name at version (the highest version when
// version is empty) for arch (or "all"); arch "" takes any.
func (s *Snapshot) Find(name, ver, arch string) (*Entry, error) {
	ents := s.entries[name]
	if len(ents) == 0 {
		return nil, fmt.Errorf("%w: no configured repository has a package %q: check the name (apt-cache policy %s on a node), or add its repository to repositories in config.yaml", ErrNoPackage, name, name)
	}
	var best *Entry
	var have []string
	for _, e := range ents {
		if arch != "" && e.Arch != arch && e.Arch != "all" {
			continue
		}
		have = append(have, e.Version)
		if ver != "" {
			if e.Version == ver {
				return e, nil
			}
			continue
		}
		if best == nil || compare(e.Version, best.Version) > 0 {
			best = e
		}
	}
	if best == nil {
		slices.SortFunc(have, compare)
		return nil, fmt.Errorf("%w: %s %s: the repositories offer %s (arch %s): pick one of those", ErrNoVersion, name, ver, strings.Join(slices.Compact(have), ", "), orAny(arch))
	}
	return best, nil
}

func orAny(a string) string {
	if a == "" {
		return "any"
	}
	return a
}

func compare(a, b string) int {
	va, e1 := version.Parse(a)
	vb, e2 := version.Parse(b)
	if e1 != nil || e2 != nil {
		return strings.Compare(a, b)
	}
	return version.Compare(va, vb)
}

// FetchDeb returns e's .deb, checked against the SHA256 and size of its
// (verified) index.
func (m *Mirror) FetchDeb(ctx context.Context, e *Entry) ([]byte, error) {
	want := sized{hash: e.SHA256, size: e.Size}
	if m.cache != "" {
		if b, err := os.ReadFile(filepath.Join(m.cache, e.SHA256+".deb")); err == nil && check("", b, want) == nil {
			return b, nil
		}
	}
	u := strings.TrimSuffix(e.Repo.URL, "/") + "/"
	if e.Repo.flat() {
		u = e.Repo.base()
	}
	u += path.Clean(e.Filename)
	b, err := m.get(ctx, u, min(e.Size, maxDeb))
	if err != nil {
		return nil, err
	}
	if err := check(fmt.Sprintf("%s %s (%s)", e.Name, e.Version, u), b, want); err != nil {
		return nil, err
	}
	if m.cache != "" {
		tmp := filepath.Join(m.cache, e.SHA256+".tmp")
		if os.WriteFile(tmp, b, 0o600) == nil {
			_ = os.Rename(tmp, filepath.Join(m.cache, e.SHA256+".deb"))
		}
	}
	return b, nil
}
