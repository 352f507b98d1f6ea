package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/api/crds"
	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
)

// DefaultNamespace is given to namespaced objects that name none, as kubectl
// does.
const DefaultNamespace = "default"

// ParseError is a file that is not valid YAML. A snapshot with one is not
// used at all: the previous configuration stays in force.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// LoadPath reads a YAML file, or every *.yaml, *.yml and *.json file under a
// folder (recursively, in lexical order), into one Snapshot. It fails only
// when a file cannot be read or does not parse as YAML; objects that parse but
// do not decode are listed in Snapshot.Rejected. It is a Loader used once.
func LoadPath(path string) (*Snapshot, error) {
	return (&Loader{}).Load(path)
}

// Loader is LoadPath for a process that loads the same path again and again
// (the files provider): it remembers each document's outcome (its decoded,
// defaulted and validated object, or why it was rejected or ignored), keyed
// by a SHA-256 of the document's bytes, so a reload of 10,000 objects that
// changes one decodes and validates one. It remembers only the documents of
// its last successful load. The objects it returns are shared between
// snapshots, which never modify them. The zero Loader is ready; it is safe
// for concurrent use.
type Loader struct {
	mu   sync.Mutex
	docs map[[32]byte]*decoded
}

// Load reads path as LoadPath does.
func (l *Loader) Load(path string) (*Snapshot, error) {
	files, err := ManifestFiles(path)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &docCache{old: l.docs, next: make(map[[32]byte]*decoded, len(l.docs))}
	s := &Snapshot{}
	seen := map[string]string{}
	digest := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		fmt.Fprintf(digest, "%s\x00%d\x00", f, len(data))
		digest.Write(data)
		if err := parseInto(s, seen, f, data, c); err != nil {
			return nil, err
		}
	}
	digest.Sum(s.Digest[:0])
	l.docs = c.next
	return s, nil
}

// ManifestFiles lists the manifest files LoadPath reads for path.
func ManifestFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config path: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			// Skip hidden folders such as editors' and Kubernetes
			// ConfigMap mounts' "..data" indirections.
			if p != path && strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, ".") {
			return nil
		}
		switch filepath.Ext(name) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("config path %s: %w", path, err)
	}
	sort.Strings(files)
	return files, nil
}

// Parse decodes one multi-document YAML stream named file into a new
// Snapshot. It is LoadPath for a single in-memory file.
func Parse(file string, data []byte) (*Snapshot, error) {
	s := &Snapshot{}
	if err := parseInto(s, map[string]string{}, file, data, &docCache{next: map[[32]byte]*decoded{}}); err != nil {
		return nil, err
	}
	return s, nil
}

// document is one YAML document of a stream and the line it starts on.
type document struct {
	line int
	data []byte
}

// splitDocuments cuts a YAML stream at "---" separator lines, remembering
// where each document starts so errors can name the right line.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine := 0, 1
	line := 1
	for i := 0; i <= len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		var l []byte
		next := 0
		if end < 0 {
			l = data[i:]
			next = len(data) + 1
		} else {
			l = data[i : i+end]
			next = i + end + 1
		}
		t := bytes.TrimRight(l, " \t\r")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) || bytes.Equal(t, []byte("...")) {
			docs = append(docs, document{line: startLine, data: data[start:i]})
			start, startLine = min(next, len(data)), line+1
		}
		i = next
		line++
	}
	docs = append(docs, document{line: startLine, data: data[start:]})
	return docs
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// parseError turns a YAML library error into one naming the absolute line.
func parseError(file string, doc document, err error) *ParseError {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	line := doc.line
	if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
		n, _ := strconv.Atoi(msg[m[2]:m[3]])
		line = doc.line + n - 1
		msg = strings.TrimSpace(strings.TrimPrefix(msg[:m[0]]+msg[m[1]:], "yaml: "))
		msg = strings.TrimPrefix(msg, ": ")
	}
	return &ParseError{File: file, Line: line, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// header is the part of every object the loader reads before knowing its type.
type header struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
}

// decoded is what one document yields, whatever file and line it is at: an
// object to add, or a problem to report (its Position filled in per load).
type decoded struct {
	skip    bool // blank or null document
	ignored bool // a kind Meshgate does not handle
	// obj is the typed object; nil when the document was rejected.
	obj any
	// key identifies obj for the duplicate check: kind/namespace/name.
	key string
	// problem names the object; its Reason is why it was rejected or
	// ignored.
	problem Problem
}

// docCache hands out decoded documents: the ones of the previous load by
// the hash of their bytes, and new ones decoded once. next ends up holding
// exactly the documents of this load.
type docCache struct {
	old, next map[[32]byte]*decoded
}

func (c *docCache) decode(file string, doc document) (*decoded, error) {
	key := sha256.Sum256(doc.data)
	if d, ok := c.next[key]; ok {
		return d, nil
	}
	d, ok := c.old[key]
	if !ok {
		var err error
		if d, err = decodeDocument(file, doc); err != nil {
			return nil, err
		}
	}
	c.next[key] = d
	return d, nil
}

func parseInto(s *Snapshot, seen map[string]string, file string, data []byte, c *docCache) error {
	for _, doc := range splitDocuments(data) {
		d, err := c.decode(file, doc)
		if err != nil {
			return err
		}
		if d.skip {
			continue
		}
		p := d.problem
		p.Position = file + ":" + strconv.Itoa(doc.line)
		switch {
		case d.ignored:
			s.Ignored = append(s.Ignored, p)
		case d.obj == nil:
			s.Rejected = append(s.Rejected, p)
		default:
			if first, dup := seen[d.key]; dup {
				p.Reason = "duplicate object; the one at " + first + " is used"
				s.Rejected = append(s.Rejected, p)
				continue
			}
			seen[d.key] = p.Position
			add(s, d.obj)
		}
	}
	return nil
}

// decodeDocument decodes, defaults and validates one document. Its only
// errors are *ParseError, for a document that is not YAML or not a mapping;
// they depend on where the document is, so they are never cached.
func decodeDocument(file string, doc document) (*decoded, error) {
	if isBlank(doc.data) {
		return &decoded{skip: true}, nil
	}
	js, err := yaml.YAMLToJSON(doc.data)
	if err != nil {
		return nil, parseError(file, doc, err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return &decoded{skip: true}, nil
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		if bytes.HasPrefix(bytes.TrimSpace(js), []byte("{")) {
			return &decoded{problem: Problem{Reason: "metadata: " + cleanDecodeError(err)}}, nil
		}
		return nil, &ParseError{File: file, Line: doc.line, Msg: "document is not a mapping (an object with apiVersion and kind)"}
	}
	d := &decoded{problem: Problem{Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name}}
	p := &d.problem
	if h.APIVersion == "" || h.Kind == "" {
		p.Reason = "apiVersion and kind are required"
		return d, nil
	}
	obj := target(h.APIVersion, h.Kind)
	if obj == nil {
		p.Reason = fmt.Sprintf("kind %s of %s is not handled by Meshgate; ignored", h.Kind, h.APIVersion)
		d.ignored = true
		return d, nil
	}
	if p.Namespace == "" && !clusterScoped(h.Kind) {
		p.Namespace = DefaultNamespace
	}
	if h.APIVersion == mgv1alpha1.GroupName+"/"+mgv1alpha1.Version {
		// Meshgate's own kinds get what the API server gives them on
		// create: their CRD's defaults, OpenAPI and CEL validation.
		defaulted, errs := validateCRD(js)
		if len(errs) > 0 {
			p.Reason = strings.Join(errs, "; ")
			return d, nil
		}
		js = defaulted
	}
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err == nil && len(strict) > 0 {
		err = errors.Join(strict...)
	}
	if err != nil {
		p.Reason = cleanDecodeError(err)
		return d, nil
	}
	meta := objectMeta(obj)
	if meta.Name == "" {
		p.Reason = "metadata.name: required"
		return d, nil
	}
	if clusterScoped(h.Kind) {
		meta.Namespace = ""
	} else if meta.Namespace == "" {
		meta.Namespace = DefaultNamespace
	}
	p.Namespace = meta.Namespace
	if sec, ok := obj.(*corev1.Secret); ok {
		mergeStringData(sec)
	}
	d.obj, d.key = obj, h.Kind+"/"+meta.Namespace+"/"+meta.Name
	return d, nil
}

// validateCRD applies a Meshgate kind's CustomResourceDefinition to the JSON
// object js, as the API server would on create, and returns it defaulted. The
// validator is compiled once per process (a sync.OnceValues in package crds)
// and never changed after.
func validateCRD(js []byte) (defaulted []byte, errs []string) {
	var m map[string]any
	// Integers stay int64, as in the API server's unstructured objects.
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &m); err != nil {
		return nil, []string{cleanDecodeError(err)}
	}
	if errs := crds.Validate(m); len(errs) > 0 {
		return nil, errs
	}
	defaulted, err := json.Marshal(m)
	if err != nil {
		return nil, []string{err.Error()}
	}
	return defaulted, nil
}

// target returns a new typed object for apiVersion/kind, or nil for kinds
// Meshgate does not handle.
func target(apiVersion, kind string) any {
	group, _, _ := strings.Cut(apiVersion, "/")
	if !strings.Contains(apiVersion, "/") {
		group = ""
	}
	switch {
	case apiVersion == gwapiv1.GroupName+"/v1alpha2" || apiVersion == gwapiv1.GroupName+"/v1alpha3":
		// TCPRoute, TLSRoute and UDPRoute were experimental under these
		// versions with the same fields; manifests written then still
		// load, into the v1 types.
		switch kind {
		case "TCPRoute":
			return &gwapiv1.TCPRoute{}
		case "TLSRoute":
			return &gwapiv1.TLSRoute{}
		case "UDPRoute":
			return &gwapiv1.UDPRoute{}
		case "BackendTLSPolicy":
			if apiVersion != gwapiv1.GroupName+"/v1alpha3" {
				return nil
			}
			return &gwapiv1.BackendTLSPolicy{}
		}
	case group == gwapiv1.GroupName && (apiVersion == gwapiv1.GroupName+"/v1" || apiVersion == gwapiv1.GroupName+"/v1beta1"):
		switch kind {
		case "GatewayClass":
			return &gwapiv1.GatewayClass{}
		case "Gateway":
			return &gwapiv1.Gateway{}
		case "HTTPRoute":
			return &gwapiv1.HTTPRoute{}
		case "GRPCRoute":
			return &gwapiv1.GRPCRoute{}
		case "TCPRoute":
			return &gwapiv1.TCPRoute{}
		case "TLSRoute":
			return &gwapiv1.TLSRoute{}
		case "UDPRoute":
			return &gwapiv1.UDPRoute{}
		case "ReferenceGrant":
			return &gwapiv1.ReferenceGrant{}
		case "ListenerSet":
			if apiVersion != gwapiv1.GroupName+"/v1" {
				// ListenerSet was never served as v1beta1.
				return nil
			}
			return &gwapiv1.ListenerSet{}
		case "BackendTLSPolicy":
			if apiVersion != gwapiv1.GroupName+"/v1" {
				// BackendTLSPolicy was never served as v1beta1.
				return nil
			}
			return &gwapiv1.BackendTLSPolicy{}
		}
	case apiVersion == "v1":
		switch kind {
		case "Service":
			return &corev1.Service{}
		case "Secret":
			return &corev1.Secret{}
		case "Namespace":
			return &corev1.Namespace{}
		case "ConfigMap":
			return &corev1.ConfigMap{}
		}
	case apiVersion == "discovery.k8s.io/v1" && kind == "EndpointSlice":
		return &discoveryv1.EndpointSlice{}
	case apiVersion == mgv1alpha1.GroupName+"/"+mgv1alpha1.Version:
		switch kind {
		case mgv1alpha1.KindBackend:
			return &mgv1alpha1.Backend{}
		case mgv1alpha1.KindTrafficPolicy:
			return &mgv1alpha1.TrafficPolicy{}
		case mgv1alpha1.KindFaultInjection:
			return &mgv1alpha1.FaultInjection{}
		case mgv1alpha1.KindRollout:
			return &mgv1alpha1.Rollout{}
		case mgv1alpha1.KindSecurityPolicy:
			return &mgv1alpha1.SecurityPolicy{}
		}
	}
	return nil
}

// add appends obj, made by target, to its slice of s.
func add(s *Snapshot, obj any) {
	switch o := obj.(type) {
	case *gwapiv1.TCPRoute:
		s.TCPRoutes = append(s.TCPRoutes, o)
	case *gwapiv1.TLSRoute:
		s.TLSRoutes = append(s.TLSRoutes, o)
	case *gwapiv1.UDPRoute:
		s.UDPRoutes = append(s.UDPRoutes, o)
	case *gwapiv1.BackendTLSPolicy:
		s.BackendTLSPolicies = append(s.BackendTLSPolicies, o)
	case *gwapiv1.GatewayClass:
		s.GatewayClasses = append(s.GatewayClasses, o)
	case *gwapiv1.Gateway:
		s.Gateways = append(s.Gateways, o)
	case *gwapiv1.HTTPRoute:
		s.HTTPRoutes = append(s.HTTPRoutes, o)
	case *gwapiv1.GRPCRoute:
		s.GRPCRoutes = append(s.GRPCRoutes, o)
	case *gwapiv1.ReferenceGrant:
		s.ReferenceGrants = append(s.ReferenceGrants, o)
	case *gwapiv1.ListenerSet:
		s.ListenerSets = append(s.ListenerSets, o)
	case *corev1.Service:
		s.Services = append(s.Services, o)
	case *corev1.Secret:
		s.Secrets = append(s.Secrets, o)
	case *corev1.Namespace:
		s.Namespaces = append(s.Namespaces, o)
	case *corev1.ConfigMap:
		s.ConfigMaps = append(s.ConfigMaps, o)
	case *discoveryv1.EndpointSlice:
		s.EndpointSlices = append(s.EndpointSlices, o)
	case *mgv1alpha1.Backend:
		s.Backends = append(s.Backends, o)
	case *mgv1alpha1.TrafficPolicy:
		s.TrafficPolicies = append(s.TrafficPolicies, o)
	case *mgv1alpha1.FaultInjection:
		s.FaultInjections = append(s.FaultInjections, o)
	case *mgv1alpha1.Rollout:
		s.Rollouts = append(s.Rollouts, o)
	case *mgv1alpha1.SecurityPolicy:
		s.SecurityPolicies = append(s.SecurityPolicies, o)
	default:
		panic(fmt.Sprintf("config: no Snapshot slice for %T", obj))
	}
}

func clusterScoped(kind string) bool { return kind == "GatewayClass" || kind == "Namespace" }

func objectMeta(obj any) *metav1.ObjectMeta {
	if o, ok := obj.(interface{ GetObjectMeta() metav1.Object }); ok {
		if m, ok := o.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return m
		}
	}
	switch o := obj.(type) {
	case *mgv1alpha1.Backend:
		return &o.ObjectMeta
	case *mgv1alpha1.TrafficPolicy:
		return &o.ObjectMeta
	case *mgv1alpha1.FaultInjection:
		return &o.ObjectMeta
	case *mgv1alpha1.Rollout:
		return &o.ObjectMeta
	case *mgv1alpha1.SecurityPolicy:
		return &o.ObjectMeta
	}
	panic(fmt.Sprintf("config: %T has no ObjectMeta", obj))
}

// mergeStringData folds stringData into data, as the API server does on write.
func mergeStringData(sec *corev1.Secret) {
	if len(sec.StringData) == 0 {
		return
	}
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	for k, v := range sec.StringData {
		sec.Data[k] = []byte(v)
	}
	sec.StringData = nil
}

// cleanDecodeError strips the JSON library's layers of prefixes so the message
// names the field.
func cleanDecodeError(err error) string {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return strings.ReplaceAll(msg, "\n", "; ")
}

func isBlank(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}
