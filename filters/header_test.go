package filters

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// Cases follow conformance tests httproute-request-header-modifier and
// httproute-response-header-modifier.
func TestHeaderModifier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  ir.HeaderModifier
		in   http.Header
		want http.Header
	}{
		{
			name: "set adds a missing header",
			mod:  ir.HeaderModifier{Set: []ir.Header{{Name: "X-Header-Set", Value: "set-overwrites-values"}}},
			in:   http.Header{"Some-Other-Header": {"val"}},
			want: http.Header{"Some-Other-Header": {"val"}, "X-Header-Set": {"set-overwrites-values"}},
		},
		{
			name: "set overwrites an existing header",
			mod:  ir.HeaderModifier{Set: []ir.Header{{Name: "X-Header-Set", Value: "set-overwrites-values"}}},
			in:   http.Header{"X-Header-Set": {"some-other-value", "second"}},
			want: http.Header{"X-Header-Set": {"set-overwrites-values"}},
		},
		{
			name: "add to a missing header",
			mod:  ir.HeaderModifier{Add: []ir.Header{{Name: "X-Header-Add", Value: "add-appends-values"}}},
			in:   http.Header{},
			want: http.Header{"X-Header-Add": {"add-appends-values"}},
		},
		{
			name: "add appends to an existing header",
			mod:  ir.HeaderModifier{Add: []ir.Header{{Name: "X-Header-Add", Value: "add-appends-values"}}},
			in:   http.Header{"X-Header-Add": {"some-other-value"}},
			want: http.Header{"X-Header-Add": {"some-other-value", "add-appends-values"}},
		},
		{
			name: "remove deletes",
			mod:  ir.HeaderModifier{Remove: []string{"X-Header-Remove"}},
			in:   http.Header{"X-Header-Remove": {"val"}, "Keep": {"k"}},
			want: http.Header{"Keep": {"k"}},
		},
		{
			name: "multiple",
			mod: ir.HeaderModifier{
				Set: []ir.Header{{Name: "X-Header-Set-1", Value: "header-set-1"}, {Name: "X-Header-Set-2", Value: "header-set-2"}},
				Add: []ir.Header{
					{Name: "X-Header-Add-1", Value: "header-add-1"},
					{Name: "X-Header-Add-2", Value: "header-add-2"},
					{Name: "X-Header-Add-3", Value: "header-add-3"},
				},
				Remove: []string{"X-Header-Remove-1", "X-Header-Remove-2"},
			},
			in: http.Header{
				"X-Header-Set-2": {"set-val-2"}, "X-Header-Add-2": {"add-val-2"},
				"X-Header-Remove-2": {"remove-val-2"}, "Another-Header": {"another-header-val"},
			},
			want: http.Header{
				"X-Header-Set-1": {"header-set-1"}, "X-Header-Set-2": {"header-set-2"},
				"X-Header-Add-1": {"header-add-1"}, "X-Header-Add-2": {"add-val-2", "header-add-2"},
				"X-Header-Add-3": {"header-add-3"}, "Another-Header": {"another-header-val"},
			},
		},
		{
			name: "case-insensitivity: config names are canonicalized",
			mod: ir.HeaderModifier{
				Set:    []ir.Header{{Name: "x-header-set", Value: "header-set"}},
				Add:    []ir.Header{{Name: "x-HEADER-add", Value: "header-add"}},
				Remove: []string{"x-header-remove"},
			},
			in: http.Header{
				"X-Header-Set": {"original-val-set"}, "X-Header-Add": {"original-val-add"},
				"X-Header-Remove": {"original-val-remove"}, "Another-Header": {"another-header-val"},
			},
			want: http.Header{
				"X-Header-Set": {"header-set"}, "X-Header-Add": {"original-val-add", "header-add"},
				"Another-Header": {"another-header-val"},
			},
		},
		{
			name: "remove runs before set and add",
			mod: ir.HeaderModifier{
				Set:    []ir.Header{{Name: "A", Value: "set"}},
				Add:    []ir.Header{{Name: "A", Value: "added"}, {Name: "B", Value: "b2"}},
				Remove: []string{"A", "B"},
			},
			in:   http.Header{"A": {"old"}, "B": {"b1"}},
			want: http.Header{"A": {"set", "added"}, "B": {"b2"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := NewHeaderModifier(&tc.mod)
			if err != nil {
				t.Fatal(err)
			}
			h := tc.in.Clone()
			m.Apply(h)
			if !reflect.DeepEqual(h, tc.want) {
				t.Errorf("got %v, want %v", h, tc.want)
			}
		})
	}
}

func TestHeaderModifierSharedSlicesNotCorrupted(t *testing.T) {
	t.Parallel()
	m, err := NewHeaderModifier(&ir.HeaderModifier{Set: []ir.Header{{Name: "A", Value: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	h1 := http.Header{}
	m.Apply(h1)
	h1.Add("A", "2") // appends: must copy, not write into the shared slice
	h2 := http.Header{}
	m.Apply(h2)
	if got := h2["A"]; !reflect.DeepEqual(got, []string{"1"}) {
		t.Errorf("second request sees %v, want [1]", got)
	}
}

func TestNewHeaderModifierErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  *ir.HeaderModifier
	}{
		{name: "nil", mod: nil},
		{name: "empty set name", mod: &ir.HeaderModifier{Set: []ir.Header{{Value: "v"}}}},
		{name: "empty add name", mod: &ir.HeaderModifier{Add: []ir.Header{{Value: "v"}}}},
		{name: "empty remove name", mod: &ir.HeaderModifier{Remove: []string{""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewHeaderModifier(tc.mod); err == nil {
				t.Error("want error")
			}
		})
	}
}

func TestHeaderModifierApplyAllocs(t *testing.T) {
	m, err := NewHeaderModifier(&ir.HeaderModifier{
		Set:    []ir.Header{{Name: "X-Set", Value: "v"}},
		Add:    []ir.Header{{Name: "X-Add", Value: "v"}},
		Remove: []string{"X-Remove"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	allocs := testing.AllocsPerRun(100, func() {
		delete(h, "X-Add")
		m.Apply(h)
	})
	if allocs != 0 {
		t.Errorf("Apply allocates %v times, want 0", allocs)
	}
}

func BenchmarkHeaderModifier(b *testing.B) {
	m, err := NewHeaderModifier(&ir.HeaderModifier{
		Set:    []ir.Header{{Name: "X-Set", Value: "v"}},
		Add:    []ir.Header{{Name: "X-Add", Value: "v"}},
		Remove: []string{"X-Remove"},
	})
	if err != nil {
		b.Fatal(err)
	}
	h := http.Header{"X-Remove": {"r"}, "Other": {"o"}}
	b.ReportAllocs()
	for b.Loop() {
		delete(h, "X-Add")
		m.Apply(h)
	}
}

// TestHeaderModifierEdits: Edits names the fields a modifier removes, sets
// or adds, in any spelling the config used, and no other.
func TestHeaderModifierEdits(t *testing.T) {
	m, err := NewHeaderModifier(&ir.HeaderModifier{
		Remove: []string{"x-forwarded-for"},
		Set:    []ir.Header{{Name: "X-A", Value: "1"}},
		Add:    []ir.Header{{Name: "forwarded", Value: "for=x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names []string
		want  bool
	}{
		{[]string{"X-Forwarded-For"}, true},
		{[]string{"X-A"}, true},
		{[]string{"Forwarded"}, true},
		{[]string{"X-Forwarded-Proto", "X-Forwarded-Host"}, false},
		{[]string{"X-Forwarded-Proto", "Forwarded"}, true},
		{nil, false},
	} {
		if got := m.Edits(tc.names...); got != tc.want {
			t.Errorf("Edits(%q) = %v, want %v", tc.names, got, tc.want)
		}
	}
}
