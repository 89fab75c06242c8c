package mesostest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/gogo/protobuf/proto"
)

// Mesos parses JSON bodies into protobufs with stout's protobuf::parse
// (3rdparty/stout/include/stout/protobuf.hpp), which is more lenient than
// mesos-go's generated JSON decoders: numbers and booleans may come as
// JSON strings ("nanoseconds": "3000000000", "checkpoint": "true"), null
// means an unset field, a single value is accepted for a repeated field,
// and an unknown enum name leaves an optional field unset (proto2
// semantics) instead of failing. normalizeProtoJSON rewrites a JSON
// document into the strict form mesos-go accepts, guided by the Go type
// the document decodes into, so that whatever real Mesos accepts the
// emulator accepts too.
func normalizeProtoJSON(body []byte, target reflect.Type) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	out, keep, err := normalizeValue(doc, target, "")
	if err != nil {
		return nil, err
	}
	if !keep {
		out = map[string]any{}
	}
	return json.Marshal(out)
}

// protoField is what the normalizer needs to know of a generated field.
type protoField struct {
	name     string // protobuf field name (for messages)
	typ      reflect.Type
	required bool
	enum     string // registered enum type name, "" if not an enum
}

var protoFieldCache sync.Map // reflect.Type -> map[string]protoField (by JSON name)

func protoFieldsOf(t reflect.Type) map[string]protoField {
	if cached, ok := protoFieldCache.Load(t); ok {
		return cached.(map[string]protoField)
	}
	fields := map[string]protoField{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("protobuf")
		if tag == "" {
			continue
		}
		f := protoField{typ: sf.Type}
		parts := strings.Split(tag, ",")
		if len(parts) > 2 {
			f.required = parts[2] == "req"
		}
		for _, p := range parts {
			switch {
			case strings.HasPrefix(p, "name="):
				f.name = strings.TrimPrefix(p, "name=")
			case strings.HasPrefix(p, "enum="):
				f.enum = strings.TrimPrefix(p, "enum=")
			}
		}
		jsonName := strings.Split(sf.Tag.Get("json"), ",")[0]
		if jsonName == "" || jsonName == "-" {
			jsonName = f.name
		}
		fields[jsonName] = f
	}
	protoFieldCache.Store(t, fields)
	return fields
}

// normalizeValue rewrites v for a field of Go type t. keep is false when
// the field must be left unset (null, unknown enum of an optional field).
func normalizeValue(v any, t reflect.Type, field string) (out any, keep bool, err error) {
	if v == nil {
		return nil, false, nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return v, true, nil // let the decoder report it
		}
		fields := protoFieldsOf(t)
		for key, val := range obj {
			f, known := fields[key]
			if !known {
				continue // unknown fields are ignored, as by stout
			}
			nv, keep, err := normalizeField(val, f)
			if err != nil {
				return nil, false, err
			}
			if keep {
				obj[key] = nv
			} else {
				delete(obj, key)
			}
		}
		return obj, true, nil
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return v, true, nil
		}
		for key, val := range obj {
			nv, keep, err := normalizeValue(val, t.Elem(), field)
			if err != nil {
				return nil, false, err
			}
			if keep {
				obj[key] = nv
			} else {
				delete(obj, key)
			}
		}
		return obj, true, nil
	case reflect.Bool:
		if s, ok := v.(string); ok {
			b, err := strconv.ParseBool(s)
			if err != nil || (s != "true" && s != "false") {
				return nil, false, fmt.Errorf("Failed to parse '%s' as a JSON boolean for field '%s'", s, field)
			}
			return b, true, nil
		}
	case reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return normalizeInteger(v, t.Kind(), field)
	case reflect.Float32, reflect.Float64:
		if s, ok := v.(string); ok {
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				return nil, false, fmt.Errorf("Failed to parse '%s' as a JSON number for field '%s'", s, field)
			}
			return json.Number(s), true, nil
		}
	}
	return v, true, nil
}

func normalizeField(v any, f protoField) (any, bool, error) {
	t := f.typ
	if t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8 {
		items, ok := v.([]any)
		if !ok {
			if v == nil {
				return nil, false, nil
			}
			items = []any{v} // stout adds a single value to a repeated field
		}
		out := make([]any, 0, len(items))
		for _, item := range items {
			elem := protoField{name: f.name, typ: t.Elem(), enum: f.enum}
			nv, keep, err := normalizeField(item, elem)
			if err != nil {
				return nil, false, err
			}
			if keep {
				out = append(out, nv)
			}
		}
		return out, true, nil
	}
	if f.enum != "" {
		s, ok := v.(string)
		if !ok {
			return v, v != nil, nil
		}
		if _, known := proto.EnumValueMap(f.enum)[s]; !known {
			if f.required {
				return nil, false, fmt.Errorf("Failed to find enum for '%s'", s)
			}
			// proto2: an unrecognized value leaves the field unset.
			return nil, false, nil
		}
		return s, true, nil
	}
	return normalizeValue(v, t, f.name)
}

// normalizeInteger accepts integers as JSON numbers or strings, and
// truncates fractions the way stout converts a JSON::Number.
func normalizeInteger(v any, kind reflect.Kind, field string) (any, bool, error) {
	var text string
	switch x := v.(type) {
	case string:
		text = strings.TrimSpace(x)
	case json.Number:
		text = x.String()
	default:
		return v, true, nil
	}
	if kind == reflect.Uint32 || kind == reflect.Uint64 {
		if u, err := strconv.ParseUint(text, 10, 64); err == nil {
			return json.Number(strconv.FormatUint(u, 10)), true, nil
		}
	} else if i, err := strconv.ParseInt(text, 10, 64); err == nil {
		return json.Number(strconv.FormatInt(i, 10)), true, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false, fmt.Errorf("Failed to parse '%s' as a JSON number for field '%s'", text, field)
	}
	return json.Number(strconv.FormatFloat(math.Trunc(f), 'f', -1, 64)), true, nil
}
