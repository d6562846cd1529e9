package node

import (
	"fmt"
	"path/filepath"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

// checkFits refuses, before a byte is fetched, an order whose packages
// cannot fit this node: the fragments the cache lacks must fit the cache
// quota and the cache's filesystem (leaving the cache's reserve free), and
// the largest package must fit the temp dir twice over, once reassembled
// and once extracted (an archive's extracted size is not in the manifest;
// the archive's own size is taken for it, packages are compressed). When
// the cache and the temp dir share a filesystem, the needs add up. The
// refusal is ERR_DOWNLOAD_PACK with the numbers.
func (n *Node) checkFits(pkgs []runner.Package) error {
	var fragNeed, largest int64
	for _, p := range pkgs {
		m := p.Manifest
		largest = max(largest, m.Size)
		for i, c := range m.FragmentCIDs() {
			if has, err := n.store.Has(c); err == nil && has {
				continue
			}
			fragNeed += m.FragmentLen(i)
		}
	}
	refuse := func(format string, a ...any) error {
		return &packageError{pkg: pkgs[0].ID, state: core.ErrDownloadPack, msg: fmt.Sprintf(format, a...)}
	}
	if len(pkgs) == 0 {
		return nil
	}
	if used, quota := n.store.Usage(); quota > 0 && fragNeed > quota {
		return refuse("does not fit the cache: needs %s of fragments, cache_quota is %s (%s used): raise cache_quota",
			human(fragNeed), human(quota), human(used))
	}
	cacheDir, tmpDir := filepath.Join(n.cfg.Dir, cacheSubdir), n.cfg.tempDir()
	reserve := int64(cache.DefaultReserveBytes)
	extractNeed := 2 * largest
	cacheFree, ok1 := cache.FreeBytes(cacheDir)
	tmpFree, ok2 := cache.FreeBytes(tmpDir)
	switch {
	case !ok1 || !ok2:
		return nil // cannot tell: the cache's own guard still refuses writes on a full disk
	case cache.SameFilesystem(cacheDir, tmpDir):
		if need := fragNeed + extractNeed + reserve; need > cacheFree {
			return refuse("does not fit the disk: needs %s (fragments %s + reassembly and extraction %s + %s kept free for the cache), %s free in %s: free space there",
				human(need), human(fragNeed), human(extractNeed), human(reserve), human(cacheFree), cacheDir)
		}
	default:
		if need := fragNeed + reserve; need > cacheFree {
			return refuse("does not fit the cache's disk: needs %s (fragments %s + %s kept free), %s free in %s: free space there",
				human(need), human(fragNeed), human(reserve), human(cacheFree), cacheDir)
		}
		if extractNeed > tmpFree {
			return refuse("does not fit the temp dir: reassembly and extraction need %s, %s free in %s: free space there or set temp_dir",
				human(extractNeed), human(tmpFree), tmpDir)
		}
	}
	return nil
}

func human(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
