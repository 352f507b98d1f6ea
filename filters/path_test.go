package filters

import "testing"

// The rows of the ReplacePrefixMatch table in the HTTPPathModifier doc comment.
func TestReplacePrefixDocTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, prefix, repl, want string
	}{
		{"/foo/bar", "/foo", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
		{"/foo", "/foo", "/xyz", "/xyz"},
		{"/foo/", "/foo", "/xyz", "/xyz/"},
		{"/foo/bar", "/foo", "", "/bar"},
		{"/foo/", "/foo", "", "/"},
		{"/foo", "/foo", "", "/"},
		{"/foo/", "/foo", "/", "/"},
		{"/foo", "/foo", "/", "/"},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.prefix+" "+tc.repl, func(t *testing.T) {
			t.Parallel()
			got, ok := replacePrefix(tc.path, trimSlash(tc.prefix), trimSlash(tc.repl))
			if !ok || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestHasSegmentPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, prefix string
		want         bool
	}{
		{"/foo", "/foo", true},
		{"/foo/", "/foo", true},
		{"/foo/bar", "/foo", true},
		{"/foobar", "/foo", false},
		{"/fo", "/foo", false},
		{"/anything", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.prefix, func(t *testing.T) {
			t.Parallel()
			if got := hasSegmentPrefix(tc.path, tc.prefix); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
