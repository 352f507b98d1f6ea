// Package crds holds the CustomResourceDefinitions of Meshgate's own kinds
// (generated from api/v1alpha1 by `make generate`) and applies their
// validation to objects outside a cluster, so the files provider accepts and
// rejects exactly what the API server would.
package crds

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"sync"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

//go:embed *.yaml
var files embed.FS

// Files are the CRD manifests, one YAML file per kind, ready for
// `kubectl apply`.
func Files() fs.FS { return files }

// Validator checks objects of the kinds the embedded CRDs define. It is
// safe for concurrent use. A CRD's schemas and CEL rules are compiled the
// first time an object of one of its kinds is validated: compiled, they
// take about half a megabyte each, and most configs use one or two kinds.
type Validator struct {
	kinds map[string]*crdEntry // by "group/version/Kind"
}

// crdEntry is one embedded CRD, compiled on first use.
type crdEntry struct {
	compile func() (map[string]*kindSchema, error) // sync.OnceValues
}

// kindSchema is what the API server compiles from one served CRD version.
type kindSchema struct {
	structural *schema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator // nil when the schema has no rules
}

// NewValidator reads the embedded CRDs; Compile compiles them all.
func NewValidator() (*Validator, error) {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		return nil, err
	}
	v := &Validator{kinds: map[string]*crdEntry{}}
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			return nil, fmt.Errorf("crds: %s: %w", name, err)
		}
		// The entry keeps the embedded bytes, not the decoded CRD: an
		// unused kind costs nothing on the heap.
		e := &crdEntry{compile: sync.OnceValues(func() (map[string]*kindSchema, error) {
			kinds, err := compileCRD(data)
			if err != nil {
				return nil, fmt.Errorf("crds: %s: %w", name, err)
			}
			return kinds, nil
		})}
		for _, ver := range crd.Spec.Versions {
			if ver.Served && ver.Schema != nil {
				v.kinds[crd.Spec.Group+"/"+ver.Name+"/"+crd.Spec.Names.Kind] = e
			}
		}
	}
	return v, nil
}

// Compile compiles every CRD now. It fails when a CRD is one the API
// server would refuse (a malformed schema, a CEL rule that does not compile
// or may cost too much).
func (v *Validator) Compile() error {
	for _, e := range v.kinds {
		if _, err := e.compile(); err != nil {
			return err
		}
	}
	return nil
}

// compileCRD compiles the served versions of a CRD manifest, keyed as
// Validator.kinds.
func compileCRD(data []byte) (map[string]*kindSchema, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		return nil, err
	}
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(&crd)
	var internal apiextensionsinternal.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&crd, &internal, nil); err != nil {
		return nil, err
	}
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
		return nil, fmt.Errorf("the API server would reject it: %w", errs.ToAggregate())
	}
	kinds := map[string]*kindSchema{}
	for _, ver := range crd.Spec.Versions {
		if !ver.Served || ver.Schema == nil {
			continue
		}
		var val apiextensionsinternal.CustomResourceValidation
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(ver.Schema, &val, nil); err != nil {
			return nil, err
		}
		s, err := schema.NewStructural(val.OpenAPIV3Schema)
		if err != nil {
			return nil, fmt.Errorf("%s: structural schema: %w", ver.Name, err)
		}
		// As the API server does: its own copy, with defaults pruned of
		// fields the schema does not know.
		s = s.DeepCopy()
		if err := structuraldefaulting.PruneDefaults(s); err != nil {
			return nil, fmt.Errorf("%s: prune defaults: %w", ver.Name, err)
		}
		sv, _, err := apiservervalidation.NewSchemaValidator(val.OpenAPIV3Schema)
		if err != nil {
			return nil, fmt.Errorf("%s: schema validator: %w", ver.Name, err)
		}
		kinds[crd.Spec.Group+"/"+ver.Name+"/"+crd.Spec.Names.Kind] = &kindSchema{
			structural: s,
			schema:     sv,
			cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
		}
	}
	return kinds, nil
}

// Kinds lists the "group/version/Kind" names the validator knows, sorted.
func (v *Validator) Kinds() []string {
	var out []string
	for k := range v.kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Validate applies what the API server applies to a Meshgate object on
// create: structural-schema defaults, OpenAPI validation and the CEL
// x-kubernetes-validations. obj is the decoded JSON object (map[string]any),
// changed in place by defaulting. Each error names the field path, as in
// `spec.retry.attempts: Invalid value: 11: spec.retry.attempts in body should
// be less than or equal to 10`.
func (v *Validator) Validate(obj map[string]any) (errs []string) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	e := v.kinds[apiVersion+"/"+kind]
	if e == nil {
		return []string{fmt.Sprintf("kind %q of apiVersion %q has no CustomResourceDefinition in Meshgate", kind, apiVersion)}
	}
	compiled, err := e.compile()
	if err != nil {
		return []string{err.Error()}
	}
	k := compiled[apiVersion+"/"+kind]
	// Decoding: nulls the schema does not allow are dropped, then
	// defaults are applied.
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, k.structural)
	structuraldefaulting.Default(obj, k.structural)

	// Create validation, in the order of the API server's strategy.
	var fe field.ErrorList
	fe = append(fe, apiservervalidation.ValidateCustomResource(nil, obj, k.schema)...)
	fe = append(fe, listtype.ValidateListSetsAndMaps(nil, k.structural, obj)...)
	if k.cel != nil {
		if blocking := blockingError(fe); blocking != nil {
			fe = append(fe, blocking)
		} else {
			celErrs, _ := k.cel.Validate(context.Background(), nil, k.structural, obj, nil, celconfig.RuntimeCELCostBudget)
			fe = append(fe, celErrs...)
		}
	}
	for _, e := range fe {
		errs = append(errs, e.Error())
	}
	return errs
}

// blockingError is the API server's reason not to run CEL rules: with
// these errors the object may not have the shape the rules assume.
func blockingError(errs field.ErrorList) *field.Error {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return nil
}

// defaultValidator is built once, on first use, and never changed after;
// each CRD in it is compiled on first use.
var defaultValidator = sync.OnceValues(NewValidator)

// Validate is Validator.Validate with a validator compiled once per process
// from the embedded CRDs.
func Validate(obj map[string]any) (errs []string) {
	v, err := defaultValidator()
	if err != nil {
		return []string{err.Error()}
	}
	return v.Validate(obj)
}
