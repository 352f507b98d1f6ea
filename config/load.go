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
// do not decode are listed in Snapshot.Rejected.
func LoadPath(path string) (*Snapshot, error) {
	files, err := ManifestFiles(path)
	if err != nil {
		return nil, err
	}
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
		if err := parseInto(s, seen, f, data); err != nil {
			return nil, err
		}
	}
	digest.Sum(s.Digest[:0])
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
	if err := parseInto(s, map[string]string{}, file, data); err != nil {
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

func parseInto(s *Snapshot, seen map[string]string, file string, data []byte) error {
	for _, doc := range splitDocuments(data) {
		if isBlank(doc.data) {
			continue
		}
		js, err := yaml.YAMLToJSON(doc.data)
		if err != nil {
			return parseError(file, doc, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		pos := fmt.Sprintf("%s:%d", file, doc.line)
		var h header
		if err := json.Unmarshal(js, &h); err != nil {
			if bytes.HasPrefix(bytes.TrimSpace(js), []byte("{")) {
				s.Rejected = append(s.Rejected, Problem{Position: pos, Reason: "metadata: " + cleanDecodeError(err)})
				continue
			}
			return &ParseError{File: file, Line: doc.line, Msg: "document is not a mapping (an object with apiVersion and kind)"}
		}
		p := Problem{Position: pos, Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name}
		if h.APIVersion == "" || h.Kind == "" {
			p.Reason = "apiVersion and kind are required"
			s.Rejected = append(s.Rejected, p)
			continue
		}
		obj, add := target(s, h.APIVersion, h.Kind)
		if obj == nil {
			p.Reason = fmt.Sprintf("kind %s of %s is not handled by Meshgate; ignored", h.Kind, h.APIVersion)
			s.Ignored = append(s.Ignored, p)
			continue
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
				s.Rejected = append(s.Rejected, p)
				continue
			}
			js = defaulted
		}
		strict, err := kjson.UnmarshalStrict(js, obj)
		if err == nil && len(strict) > 0 {
			err = errors.Join(strict...)
		}
		if err != nil {
			p.Reason = cleanDecodeError(err)
			s.Rejected = append(s.Rejected, p)
			continue
		}
		meta := objectMeta(obj)
		if meta.Name == "" {
			p.Reason = "metadata.name: required"
			s.Rejected = append(s.Rejected, p)
			continue
		}
		if clusterScoped(h.Kind) {
			meta.Namespace = ""
		} else if meta.Namespace == "" {
			meta.Namespace = DefaultNamespace
		}
		p.Namespace = meta.Namespace
		key := h.Kind + "/" + meta.Namespace + "/" + meta.Name
		if first, dup := seen[key]; dup {
			p.Reason = "duplicate object; the one at " + first + " is used"
			s.Rejected = append(s.Rejected, p)
			continue
		}
		seen[key] = pos
		if sec, ok := obj.(*corev1.Secret); ok {
			mergeStringData(sec)
		}
		add()
	}
	return nil
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

// target returns a new typed object for apiVersion/kind and a function that
// adds it to the snapshot, or nil for kinds Meshgate does not handle.
func target(s *Snapshot, apiVersion, kind string) (obj any, add func()) {
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
			o := &gwapiv1.TCPRoute{}
			return o, func() { s.TCPRoutes = append(s.TCPRoutes, o) }
		case "TLSRoute":
			o := &gwapiv1.TLSRoute{}
			return o, func() { s.TLSRoutes = append(s.TLSRoutes, o) }
		case "UDPRoute":
			o := &gwapiv1.UDPRoute{}
			return o, func() { s.UDPRoutes = append(s.UDPRoutes, o) }
		case "BackendTLSPolicy":
			if apiVersion != gwapiv1.GroupName+"/v1alpha3" {
				return nil, nil
			}
			o := &gwapiv1.BackendTLSPolicy{}
			return o, func() { s.BackendTLSPolicies = append(s.BackendTLSPolicies, o) }
		}
	case group == gwapiv1.GroupName && (apiVersion == gwapiv1.GroupName+"/v1" || apiVersion == gwapiv1.GroupName+"/v1beta1"):
		switch kind {
		case "GatewayClass":
			o := &gwapiv1.GatewayClass{}
			return o, func() { s.GatewayClasses = append(s.GatewayClasses, o) }
		case "Gateway":
			o := &gwapiv1.Gateway{}
			return o, func() { s.Gateways = append(s.Gateways, o) }
		case "HTTPRoute":
			o := &gwapiv1.HTTPRoute{}
			return o, func() { s.HTTPRoutes = append(s.HTTPRoutes, o) }
		case "GRPCRoute":
			o := &gwapiv1.GRPCRoute{}
			return o, func() { s.GRPCRoutes = append(s.GRPCRoutes, o) }
		case "TCPRoute":
			o := &gwapiv1.TCPRoute{}
			return o, func() { s.TCPRoutes = append(s.TCPRoutes, o) }
		case "TLSRoute":
			o := &gwapiv1.TLSRoute{}
			return o, func() { s.TLSRoutes = append(s.TLSRoutes, o) }
		case "UDPRoute":
			o := &gwapiv1.UDPRoute{}
			return o, func() { s.UDPRoutes = append(s.UDPRoutes, o) }
		case "ReferenceGrant":
			o := &gwapiv1.ReferenceGrant{}
			return o, func() { s.ReferenceGrants = append(s.ReferenceGrants, o) }
		case "ListenerSet":
			if apiVersion != gwapiv1.GroupName+"/v1" {
				// ListenerSet was never served as v1beta1.
				return nil, nil
			}
			o := &gwapiv1.ListenerSet{}
			return o, func() { s.ListenerSets = append(s.ListenerSets, o) }
		case "BackendTLSPolicy":
			if apiVersion != gwapiv1.GroupName+"/v1" {
				// BackendTLSPolicy was never served as v1beta1.
				return nil, nil
			}
			o := &gwapiv1.BackendTLSPolicy{}
			return o, func() { s.BackendTLSPolicies = append(s.BackendTLSPolicies, o) }
		}
	case apiVersion == "v1":
		switch kind {
		case "Service":
			o := &corev1.Service{}
			return o, func() { s.Services = append(s.Services, o) }
		case "Secret":
			o := &corev1.Secret{}
			return o, func() { s.Secrets = append(s.Secrets, o) }
		case "Namespace":
			o := &corev1.Namespace{}
			return o, func() { s.Namespaces = append(s.Namespaces, o) }
		case "ConfigMap":
			o := &corev1.ConfigMap{}
			return o, func() { s.ConfigMaps = append(s.ConfigMaps, o) }
		}
	case apiVersion == "discovery.k8s.io/v1" && kind == "EndpointSlice":
		o := &discoveryv1.EndpointSlice{}
		return o, func() { s.EndpointSlices = append(s.EndpointSlices, o) }
	case apiVersion == mgv1alpha1.GroupName+"/"+mgv1alpha1.Version:
		switch kind {
		case mgv1alpha1.KindBackend:
			o := &mgv1alpha1.Backend{}
			return o, func() { s.Backends = append(s.Backends, o) }
		case mgv1alpha1.KindTrafficPolicy:
			o := &mgv1alpha1.TrafficPolicy{}
			return o, func() { s.TrafficPolicies = append(s.TrafficPolicies, o) }
		case mgv1alpha1.KindFaultInjection:
			o := &mgv1alpha1.FaultInjection{}
			return o, func() { s.FaultInjections = append(s.FaultInjections, o) }
		case mgv1alpha1.KindRollout:
			o := &mgv1alpha1.Rollout{}
			return o, func() { s.Rollouts = append(s.Rollouts, o) }
		case mgv1alpha1.KindSecurityPolicy:
			o := &mgv1alpha1.SecurityPolicy{}
			return o, func() { s.SecurityPolicies = append(s.SecurityPolicies, o) }
		}
	}
	return nil, nil
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
