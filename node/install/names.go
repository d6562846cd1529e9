package install

import (
	"fmt"
	"path"
	"strings"
)

// maxLinkTarget bounds the length of a symlink target read from a zip entry.
const maxLinkTarget = 4096

// cleanName validates an archive path (an entry name, or a hard link's
// target) and returns it in clean, slash separated, relative form ("" for the
// archive root itself), or why it is refused.
//
// Refused: empty names, NUL bytes, absolute paths, any ".." element, and, in
// zip archives (which Windows tools write), backslashes and drive letters.
// "." and empty elements are dropped, so "./a//b" is "a/b".
func cleanName(name string, isZip bool) (clean, why string) {
	bad := func(why string) (string, string) { return "", why }
	switch {
	case name == "":
		return bad("empty name")
	case strings.ContainsRune(name, 0):
		return bad("NUL byte in name")
	case strings.HasPrefix(name, "/"):
		return bad("absolute path")
	case isZip && strings.ContainsRune(name, '\\'):
		return bad(`backslash in zip name`)
	case isZip && hasDrive(name):
		return bad("drive letter in zip name")
	}
	elems := strings.Split(name, "/")
	kept := elems[:0]
	for _, e := range elems {
		switch e {
		case "", ".":
			continue
		case "..":
			return bad(`".." element`)
		}
		kept = append(kept, e)
	}
	return strings.Join(kept, "/"), ""
}

// hasDrive reports whether name starts like a Windows drive path ("C:").
func hasDrive(name string) bool {
	if len(name) < 2 || name[1] != ':' {
		return false
	}
	c := name[0] | 0x20
	return c >= 'a' && c <= 'z'
}

// symlinkTarget validates the target of a symlink entry at clean name and
// returns the target to write: path.Clean of the original.
//
// The target must be relative and, resolved lexically from the link's own
// directory, stay inside the root. Writing the cleaned form keeps that check
// true on disk: a clean relative path is some "../" steps followed by plain
// names, so it cannot climb out through another symlink ("a/link/.." would,
// if link pointed elsewhere). Extract never creates an entry under a symlink,
// so the link's directory is a real directory at the depth its name says.
func symlinkTarget(name, target string, isZip bool) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: symlink %q -> %q: %s", ErrUnsafeArchive, name, target, why)
	}
	switch {
	case target == "":
		return bad("empty target")
	case len(target) > maxLinkTarget:
		return bad("target too long")
	case strings.ContainsRune(target, 0):
		return bad("NUL byte in target")
	case strings.HasPrefix(target, "/"):
		return bad("absolute target")
	case isZip && strings.ContainsRune(target, '\\'):
		return bad("backslash in zip target")
	case isZip && hasDrive(target):
		return bad("drive letter in zip target")
	}
	clean := path.Clean(target)
	if escapes(path.Join(path.Dir(name), clean)) {
		return bad("target escapes the destination")
	}
	return clean, nil
}

// escapes reports whether a cleaned relative path climbs above its root.
func escapes(p string) bool {
	return p == ".." || strings.HasPrefix(p, "../")
}
