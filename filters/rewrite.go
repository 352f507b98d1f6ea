package filters

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/meshgate/meshgate/ir"
)

// URLRewrite is a compiled Gateway API HTTPURLRewriteFilter: it changes the
// Host header and the path of the request forwarded upstream.
type URLRewrite struct {
	hostname string // "" keeps the Host header
	path     pathModifier
}

// NewURLRewrite compiles c.
func NewURLRewrite(c *ir.URLRewrite) (*URLRewrite, error) {
	if c == nil {
		return nil, errors.New("url rewrite: nil config")
	}
	rw := &URLRewrite{}
	if c.Hostname != nil {
		rw.hostname = *c.Hostname
	}
	var err error
	if rw.path, err = compilePath(c.Path); err != nil {
		return nil, fmt.Errorf("url rewrite: %w", err)
	}
	return rw, nil
}

// Apply rewrites out, the request about to be sent upstream.
//
// A hostname replaces out.Host, the Host header sent, and leaves out.URL.Host,
// the address dialled, alone. ReplaceFullPath replaces the path;
// ReplacePrefixMatch replaces matchedPrefix (the route's PathPrefix value)
// segment-aware, as in the HTTPPathModifier doc table, and does nothing if
// matchedPrefix is empty or not a segment prefix of the path. The query is
// kept. URL.Path and URL.RawPath are kept consistent: RawPath is set only
// when it is a valid encoding of the new Path, else cleared.
func (rw *URLRewrite) Apply(out *http.Request, matchedPrefix string) {
	if rw.hostname != "" {
		out.Host = rw.hostname
	}
	u := out.URL
	switch rw.path.kind {
	case ir.FullPathReplace:
		u.Path = rw.path.decoded
		u.RawPath = ""
		if rw.path.raw != rw.path.decoded {
			u.RawPath = rw.path.raw
		}
	case ir.PrefixMatchReplace:
		if matchedPrefix == "" {
			return
		}
		p := trimSlash(matchedPrefix)
		newPath, ok := replacePrefix(u.Path, p, rw.path.decoded)
		if !ok {
			return
		}
		if u.RawPath == "" && rw.path.raw == rw.path.decoded {
			u.Path = newPath // common case: nothing escaped anywhere
			return
		}
		newRaw, rawOK := replacePrefix(u.EscapedPath(), p, rw.path.raw)
		u.Path, u.RawPath = newPath, ""
		if rawOK {
			if dec, err := url.PathUnescape(newRaw); err == nil && dec == newPath {
				u.RawPath = newRaw
			}
		}
	}
}

var _ RequestEditor = (*URLRewrite)(nil)
