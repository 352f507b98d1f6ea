package translate

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
)

// corsOriginRE is the CORSOrigin CRD pattern.
var corsOriginRE = regexp.MustCompile(`(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)`)

// corsMethods are the HTTPMethodWithWildcard enum values.
var corsMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true, "*": true,
}

// corsDefaultMaxAge is the CRD default of maxAge.
const corsDefaultMaxAge = 5

// corsFilter validates an HTTPCORSFilter the way the CRD does (patterns,
// enums, list sizes, sets, "*" alone), since files are not checked by an API
// server, and fills in the maxAge default.
func corsFilter(c *gwapiv1.HTTPCORSFilter) (*ir.CORS, error) {
	out := &ir.CORS{MaxAge: c.MaxAge}
	if c.AllowCredentials != nil {
		out.AllowCredentials = *c.AllowCredentials
	}
	switch {
	case c.MaxAge == 0:
		out.MaxAge = corsDefaultMaxAge
	case c.MaxAge < 0:
		return nil, fmt.Errorf("maxAge: %d must be at least 1", c.MaxAge)
	}

	if len(c.AllowOrigins) > 64 {
		return nil, fmt.Errorf("allowOrigins: at most 64 origins, got %d", len(c.AllowOrigins))
	}
	seen := map[string]int{}
	for i, o := range c.AllowOrigins {
		s := string(o)
		if len(s) > 253 || !corsOriginRE.MatchString(s) {
			return nil, fmt.Errorf("allowOrigins[%d]: %q is not \"*\" or an origin scheme://host[:port] (http or https; the host may be \"*\" or start with \"*.\")", i, s)
		}
		if _, port, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://"), ":"); ok {
			if n, _ := strconv.Atoi(port); n < 1 || n > 65535 {
				return nil, fmt.Errorf("allowOrigins[%d]: %q: port must be 1-65535", i, s)
			}
		}
		key := strings.ToLower(s)
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("allowOrigins[%d]: %q duplicates allowOrigins[%d]", i, s, j)
		}
		seen[key] = i
		out.AllowOrigins = append(out.AllowOrigins, s)
	}
	if _, star := seen["*"]; star && len(c.AllowOrigins) > 1 {
		return nil, fmt.Errorf("allowOrigins: \"*\" cannot be combined with other origins")
	}

	if len(c.AllowMethods) > 9 {
		return nil, fmt.Errorf("allowMethods: at most 9 methods, got %d", len(c.AllowMethods))
	}
	seen = map[string]int{}
	for i, m := range c.AllowMethods {
		s := string(m)
		if !corsMethods[s] {
			return nil, fmt.Errorf("allowMethods[%d]: %q is not GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH or \"*\"", i, s)
		}
		if j, dup := seen[s]; dup {
			return nil, fmt.Errorf("allowMethods[%d]: %q duplicates allowMethods[%d]", i, s, j)
		}
		seen[s] = i
		out.AllowMethods = append(out.AllowMethods, s)
	}
	if _, star := seen["*"]; star && len(c.AllowMethods) > 1 {
		return nil, fmt.Errorf("allowMethods: \"*\" cannot be combined with other methods")
	}

	var err error
	if out.AllowHeaders, err = corsHeaderNames("allowHeaders", c.AllowHeaders, true); err != nil {
		return nil, err
	}
	if out.ExposeHeaders, err = corsHeaderNames("exposeHeaders", c.ExposeHeaders, false); err != nil {
		return nil, err
	}
	return out, nil
}

// corsHeaderNames validates a header name list (HTTPHeaderName, a set of at
// most 64); starAlone is the CRD rule that "*" comes alone.
func corsHeaderNames(field string, hs []gwapiv1.HTTPHeaderName, starAlone bool) ([]string, error) {
	if len(hs) > 64 {
		return nil, fmt.Errorf("%s: at most 64 header names, got %d", field, len(hs))
	}
	var out []string
	seen := map[string]int{}
	for i, h := range hs {
		s := string(h)
		if len(s) > 256 || !tokenRE.MatchString(s) {
			return nil, fmt.Errorf("%s[%d]: %q is not a valid header name", field, i, s)
		}
		key := strings.ToLower(s)
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s[%d]: %q duplicates %s[%d]", field, i, s, field, j)
		}
		seen[key] = i
		out = append(out, s)
	}
	if _, star := seen["*"]; star && starAlone && len(hs) > 1 {
		return nil, fmt.Errorf("%s: \"*\" cannot be combined with other header names", field)
	}
	return out, nil
}
