package units

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DecodeYAML decodes data into dst (a pointer to a struct), unknown keys
// being an error, after rewriting the values of the fields tagged
//
//	units:"size"   units:"size,cap"   units:"rate"   units:"rate,cap"
//
// from this package's grammar into whole numbers of bytes (or bytes/s), so
// an int64 field may be written 64MiB, 100Mbit/s or, with cap, unlimited.
// Plain integers are left as they are. An empty document leaves dst alone.
func DecodeYAML(data []byte, dst any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil
	}
	t := reflect.TypeOf(dst)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("units: DecodeYAML wants a pointer to a struct, not %s", t)
	}
	if err := rewrite(doc.Content[0], t.Elem(), ""); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// rewrite walks a mapping beside the struct type it decodes into.
func rewrite(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.StructField{}
	collect(t, fields)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i].Value, n.Content[i+1]
		f, ok := fields[key]
		if !ok {
			continue
		}
		if tag := f.Tag.Get("units"); tag != "" {
			if err := rewriteValue(val, tag, path+key); err != nil {
				return err
			}
			continue
		}
		if err := rewrite(val, f.Type, path+key+"."); err != nil {
			return err
		}
	}
	return nil
}

// collect maps yaml keys to fields as yaml.v3 names them: the yaml tag's
// name, else the lowercased field name; inline structs are flattened.
func collect(t reflect.Type, into map[string]reflect.StructField) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			collect(f.Type, into)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		into[name] = f
	}
}

func rewriteValue(val *yaml.Node, tag, key string) error {
	if val.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s: want %s", key, formsFor(tag))
	}
	if _, err := strconv.ParseInt(val.Value, 10, 64); err == nil {
		return nil // a plain number: the field's own checks apply
	}
	var n int64
	var err error
	switch tag {
	case "size":
		n, err = ParseSize(val.Value)
	case "size,cap":
		n, err = ParseSizeCap(val.Value)
	case "rate":
		n, err = ParseRate(val.Value)
	case "rate,cap":
		n, err = ParseRateCap(val.Value)
	default:
		return fmt.Errorf("units: field %s: unknown units tag %q", key, tag)
	}
	if err != nil {
		return fmt.Errorf("line %d: %s: %w", val.Line, key, err)
	}
	val.Value, val.Tag, val.Style = strconv.FormatInt(n, 10), "!!int", 0
	return nil
}

func formsFor(tag string) string {
	forms := SizeForms
	if strings.HasPrefix(tag, "rate") {
		forms = RateForms
	}
	if strings.HasSuffix(tag, ",cap") {
		forms += ", or " + Unlimited
	}
	return forms
}
