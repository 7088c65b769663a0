// Package manifests decodes the deployment files that ship with extauthz —
// Envoy bootstraps and snippets, Istio and Kubernetes objects, rendered Helm
// charts — strictly, so that the tests beside them fail on a misspelt key or
// a value of the wrong type instead of letting it reach a cluster.
//
// It is for the tests of the test/manifests module (the files of envoy/,
// deploy/ and helm/); nothing in the gateway imports it. It holds no API
// types itself: callers pass the Envoy proto messages or Kubernetes types to
// decode into.
package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	sigsjson "sigs.k8s.io/json"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// ReadDocs reads a YAML file and returns each of its non-empty documents
// as JSON.
func ReadDocs(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	docs, err := Docs(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return docs, nil
}

// Docs splits YAML text into its non-empty documents, each as JSON. A
// duplicate key is an error (yaml.v3 refuses it), so is a key that is not a
// string, which JSON cannot express.
func Docs(b []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out [][]byte
	for i := 0; ; i++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if v == nil {
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, j)
	}
}

// DecodeKube decodes one JSON object into a Kubernetes API type the way the
// API server's strict field validation does: field names are matched case
// sensitively, and an unknown or duplicate field is an error.
func DecodeKube(j []byte, into any) error {
	strict, err := sigsjson.UnmarshalStrict(j, into)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// Kind reads apiVersion and kind from a JSON object.
func Kind(j []byte) (apiVersion, kind string, err error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(j, &tm); err != nil {
		return "", "", err
	}
	return tm.APIVersion, tm.Kind, nil
}

// DecodeProto decodes JSON into an Envoy (or Istio) proto message with
// protojson: an unknown field, a value of the wrong type and an Any whose
// @type is not linked into the binary are errors. For Envoy messages, call
// ValidateEnvoy afterwards.
func DecodeProto(j []byte, m proto.Message) error {
	if err := protojson.Unmarshal(j, m); err != nil {
		return fmt.Errorf("not a valid %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

type validator interface{ ValidateAll() error }

// typedStructs hide a configuration from the proto type system: Envoy
// decodes them at run time, which no test here could check.
var typedStructs = map[protoreflect.FullName]bool{
	"udpa.type.v1.TypedStruct": true,
	"xds.type.v3.TypedStruct":  true,
}

// ValidateEnvoy runs Envoy's validation rules (protoc-gen-validate's
// ValidateAll) on m and, recursively, on every typed config inside it: each
// google.protobuf.Any — in fields, lists and maps such as
// typed_per_filter_config — is unpacked into its registered message type,
// validated, and searched in turn. ValidateAll alone stops at an Any. An
// Any whose type is not registered, or that is a TypedStruct, is an error.
// Every problem is reported, each with the path of the field holding it.
func ValidateEnvoy(m proto.Message) error {
	return validateTree(m, string(m.ProtoReflect().Descriptor().FullName()))
}

func validateTree(m proto.Message, path string) error {
	var errs []error
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	walk(m.ProtoReflect(), path, func(a *anypb.Any, p string) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: typed config %q: %w", p, a.GetTypeUrl(), err))
			return
		}
		name := inner.ProtoReflect().Descriptor().FullName()
		if typedStructs[name] {
			errs = append(errs, fmt.Errorf("%s: %s hides the real type from validation; use the message's own @type", p, name))
			return
		}
		if err := validateTree(inner, p+"<"+string(name)+">"); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}

// walk calls fn for every Any reachable from m without crossing another Any.
func walk(m protoreflect.Message, path string, fn func(*anypb.Any, string)) {
	visit := func(sub protoreflect.Message, p string) {
		if a, ok := sub.Interface().(*anypb.Any); ok {
			fn(a, p)
			return
		}
		walk(sub, p, fn)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(mv.Message(), p+"["+k.String()+"]")
				return true
			})
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.Message() != nil:
			visit(v.Message(), p)
		}
		return true
	})
}

// Unpack returns the message inside an Any, for tests that look at a typed
// config's values; the message must be of type T.
func Unpack[T proto.Message](a *anypb.Any) (T, error) {
	var zero T
	m, err := a.UnmarshalNew()
	if err != nil {
		return zero, err
	}
	t, ok := m.(T)
	if !ok {
		return zero, fmt.Errorf("typed config is %s, want %T", m.ProtoReflect().Descriptor().FullName(), zero)
	}
	return t, nil
}

// TrimComment returns a YAML file's leading comment lines that start with
// prefix (such as "# want: "), without it: test data says what it expects.
func TrimComment(b []byte, prefix string) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		if s, ok := strings.CutPrefix(line, prefix); ok {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}

// rootModule is the module path of the repository's root go.mod.
const rootModule = "github.com/extauthz/extauthz"

var moduleLine = regexp.MustCompile(`(?m)^module[ \t]+(\S+)[ \t]*$`)

// RepoDir returns the absolute path of dir, a directory named relative to
// the root of the extauthz repository. The root is the nearest directory at
// or above the working directory whose go.mod declares the module
// github.com/extauthz/extauthz, so a nested module's own go.mod (this
// one's) is passed over.
func RepoDir(dir string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if m := moduleLine.FindSubmatch(b); m != nil && string(m[1]) == rootModule {
				return filepath.Join(d, filepath.FromSlash(dir)), nil
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod of %s at or above %s", rootModule, wd)
		}
		d = parent
	}
}

// Chdir changes the working directory to dir, named relative to the root of
// the repository (see RepoDir). The tests of a manifest directory call it
// from TestMain so that they read that directory's files by the same
// relative paths as if they sat beside them.
func Chdir(dir string) error {
	abs, err := RepoDir(dir)
	if err != nil {
		return err
	}
	return os.Chdir(abs)
}
