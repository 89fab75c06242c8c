package mesostest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// The media types of the scheduler API. Mesos compares Content-Type
// literally (parameters such as charset are not accepted), so do we.
const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/x-protobuf"
)

// eventEncoding is how a subscriber wants its events: the media type chosen
// from the SUBSCRIBE request's Accept header.
type eventEncoding string

// encodeEvent renders one event in the stream's media type (without the
// RecordIO length prefix).
func (e eventEncoding) encodeEvent(ev *scheduler.Event) ([]byte, error) {
	if e == mediaProtobuf {
		return ev.Marshal()
	}
	// mesos-go's generated (ffjson) MarshalJSON renders the Mesos JSON
	// mapping: proto field names, enum names as strings, bytes as base64.
	return json.Marshal(ev)
}

// decodeCall parses a request body as a scheduler.Call in the given media
// type. The error texts follow the master's (src/master/http.cpp).
func decodeCall(contentType string, body []byte) (*scheduler.Call, error) {
	var call scheduler.Call
	switch contentType {
	case mediaProtobuf:
		if err := call.Unmarshal(body); err != nil {
			return nil, fmt.Errorf("Failed to parse body into Call protobuf: %v", err)
		}
	case mediaJSON:
		trimmed := strings.TrimSpace(string(body))
		if !strings.HasPrefix(trimmed, "{") {
			return nil, errors.New("Failed to parse body into JSON: expecting a JSON object")
		}
		strict, err := normalizeProtoJSON(body, reflect.TypeOf(call))
		if err != nil {
			return nil, fmt.Errorf("Failed to convert JSON into Call protobuf: %v", err)
		}
		if err := json.Unmarshal(strict, &call); err != nil {
			return nil, fmt.Errorf("Failed to convert JSON into Call protobuf: %v", err)
		}
		// JSON has no notion of required fields in encoding/json; a protobuf
		// round trip applies the same required-field checks as Mesos'
		// protobuf::parse does for JSON bodies.
		raw, err := call.Marshal()
		if err != nil {
			return nil, fmt.Errorf("Failed to convert JSON into Call protobuf: %v", err)
		}
		var check scheduler.Call
		if err := check.Unmarshal(raw); err != nil {
			return nil, fmt.Errorf("Failed to convert JSON into Call protobuf: %v", err)
		}
		// Required strings that mesos-go keeps as plain (non-pointer) fields
		// survive the round trip even when absent; check the ones every
		// scheduler must send.
		if err := requireFrameworkInfoFields(strict, &call); err != nil {
			return nil, fmt.Errorf("Failed to convert JSON into Call protobuf: %v", err)
		}
	default:
		return nil, fmt.Errorf("unsupported content type %q", contentType)
	}
	return &call, nil
}

// validateCall mirrors validation::scheduler::call::validate in Mesos.
func validateCall(call *scheduler.Call) error {
	if call.Type == scheduler.Call_UNKNOWN {
		return errors.New("Expecting 'type' to be present")
	}
	if call.Type == scheduler.Call_SUBSCRIBE {
		if call.Subscribe == nil || call.Subscribe.FrameworkInfo == nil {
			return errors.New("Expecting 'subscribe' to be present")
		}
		if call.Subscribe.FrameworkInfo.GetID().GetValue() != call.GetFrameworkID().GetValue() {
			return errors.New("'framework_id' differs from 'subscribe.framework_info.id'")
		}
		return nil
	}
	if call.FrameworkID == nil {
		return errors.New("Expecting 'framework_id' to be present")
	}
	missing := func(name string) error { return fmt.Errorf("Expecting '%s' to be present", name) }
	switch call.Type {
	case scheduler.Call_ACCEPT:
		if call.Accept == nil {
			return missing("accept")
		}
	case scheduler.Call_DECLINE:
		if call.Decline == nil {
			return missing("decline")
		}
	case scheduler.Call_ACCEPT_INVERSE_OFFERS:
		if call.AcceptInverseOffers == nil {
			return missing("accept_inverse_offers")
		}
	case scheduler.Call_DECLINE_INVERSE_OFFERS:
		if call.DeclineInverseOffers == nil {
			return missing("decline_inverse_offers")
		}
	case scheduler.Call_KILL:
		if call.Kill == nil {
			return missing("kill")
		}
	case scheduler.Call_SHUTDOWN:
		if call.Shutdown == nil {
			return missing("shutdown")
		}
	case scheduler.Call_ACKNOWLEDGE:
		if call.Acknowledge == nil {
			return missing("acknowledge")
		}
		if len(call.Acknowledge.UUID) != 16 {
			return errors.New("Not a valid UUID: " + strconv.Quote(string(call.Acknowledge.UUID)))
		}
	case scheduler.Call_ACKNOWLEDGE_OPERATION_STATUS:
		if call.AcknowledgeOperationStatus == nil {
			return missing("acknowledge_operation_status")
		}
		if call.AcknowledgeOperationStatus.AgentID == nil {
			return missing("agent_id")
		}
	case scheduler.Call_RECONCILE:
		if call.Reconcile == nil {
			return missing("reconcile")
		}
	case scheduler.Call_RECONCILE_OPERATIONS:
		if call.ReconcileOperations == nil {
			return missing("reconcile_operations")
		}
	case scheduler.Call_MESSAGE:
		if call.Message == nil {
			return missing("message")
		}
	case scheduler.Call_REQUEST:
		if call.Request == nil {
			return missing("request")
		}
	case scheduler.Call_UPDATE_FRAMEWORK:
		if call.UpdateFramework == nil {
			return missing("update_framework")
		}
		if call.UpdateFramework.FrameworkInfo.GetID().GetValue() != call.GetFrameworkID().GetValue() {
			return errors.New("'framework_id' differs from 'update_framework.framework_info.id'")
		}
	case scheduler.Call_TEARDOWN, scheduler.Call_REVIVE, scheduler.Call_SUPPRESS:
	default:
		return fmt.Errorf("Unknown call type %d", int32(call.Type))
	}
	return nil
}

// acceptsMediaType reports whether an Accept header value allows the given
// media type (an absent header accepts everything, as in libprocess).
func acceptsMediaType(accept []string, media string) bool {
	if len(accept) == 0 {
		return true
	}
	major := strings.SplitN(media, "/", 2)[0]
	for _, header := range accept {
		for _, item := range strings.Split(header, ",") {
			parts := strings.Split(item, ";")
			candidate := strings.ToLower(strings.TrimSpace(parts[0]))
			q := 1.0
			for _, p := range parts[1:] {
				p = strings.TrimSpace(p)
				if strings.HasPrefix(p, "q=") {
					if v, err := strconv.ParseFloat(strings.TrimPrefix(p, "q="), 64); err == nil {
						q = v
					}
				}
			}
			if q <= 0 {
				continue
			}
			if candidate == media || candidate == "*/*" || candidate == major+"/*" {
				return true
			}
		}
	}
	return false
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// requireFrameworkInfoFields reports FrameworkInfo.user/name missing from a
// JSON SUBSCRIBE or UPDATE_FRAMEWORK body, as Mesos' JSON parser does.
func requireFrameworkInfoFields(body []byte, call *scheduler.Call) error {
	var path []string
	switch {
	case call.Subscribe != nil:
		path = []string{"subscribe", "framework_info"}
	case call.UpdateFramework != nil:
		path = []string{"update_framework", "framework_info"}
	default:
		return nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return err
	}
	for _, key := range path {
		var next map[string]json.RawMessage
		if err := json.Unmarshal(doc[key], &next); err != nil {
			return fmt.Errorf("Missing required fields: %s", strings.Join(path, "."))
		}
		doc = next
	}
	for _, field := range []string{"user", "name"} {
		if _, ok := doc[field]; !ok {
			return fmt.Errorf("Missing required fields: %s.%s", strings.Join(path, "."), field)
		}
	}
	return nil
}
