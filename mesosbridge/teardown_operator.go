package mesosbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// When TEARDOWN had to go before the release step could free everything (a task that
// would not die within the kill wait, or no offer carried the reservations back within
// the release wait), the master keeps the cluster's volumes and disk reservations with
// nobody to offer them to. The master's operator endpoints release them without a
// framework: GET /slaves shows each agent's reserved resources, POST
// /master/destroy-volumes and POST /master/unreserve free them (src/master/http.cpp
// destroyVolumes, unreserve). The bridge calls them with the framework's credentials.

// releaseThroughOperatorAPI frees what the master still has reserved for the cluster,
// retrying while a volume is still in use by a task TEARDOWN is killing (it may take its
// whole kill grace), for the kill wait plus ReleaseWait.
func (c *cluster) releaseThroughOperatorAPI(ctx context.Context, cl *caller) error {
	c.mu.Lock()
	fw, wait := c.cfg, c.teardown.killWait+c.opts.ReleaseWait
	c.mu.Unlock()
	base, err := masterBase(cl.endpoint)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		left, err := reservedLeftovers(ctx, cl.tr, base, fw)
		if err == nil && len(left) == 0 {
			return nil
		}
		if err == nil {
			for agentID, res := range left {
				if err = releaseOnAgent(ctx, cl.tr, base, agentID, res, fw); err != nil {
					break
				}
				c.log.Info("released leftover reservations through the operator API", "agentID", agentID, "resources", len(res))
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("reservations of the cluster remain on %d agents", len(left))
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// masterBase is the master's base URL from its scheduler endpoint.
func masterBase(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	u.Path, u.RawQuery = "", ""
	return u.String(), nil
}

// reservedLeftovers reads GET /slaves: the resources reserved for the cluster, by agent.
func reservedLeftovers(ctx context.Context, tr *transport, base string, fw FrameworkConfig) (map[string][]mesos.Resource, error) {
	resp, err := tr.do(ctx, http.MethodGet, base+"/slaves", "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /slaves: %s", errorBody(resp))
	}
	var body struct {
		Slaves []struct {
			ID                    string                       `json:"id"`
			ReservedResourcesFull map[string][]json.RawMessage `json:"reserved_resources_full"`
		} `json:"slaves"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET /slaves: %w", err)
	}
	left := map[string][]mesos.Resource{}
	for _, a := range body.Slaves {
		for _, raw := range a.ReservedResourcesFull[fw.Role] {
			var r mesos.Resource
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, fmt.Errorf("GET /slaves: agent %s: %w", a.ID, err)
			}
			if reservedForCluster(r, fw) {
				left[a.ID] = append(left[a.ID], r)
			}
		}
	}
	return left, nil
}

// releaseOnAgent destroys the cluster's volumes on one agent, then unreserves the disk.
func releaseOnAgent(ctx context.Context, tr *transport, base, agentID string, res []mesos.Resource, fw FrameworkConfig) error {
	volumes, reserved := ownedOf(res, fw)
	if len(volumes) > 0 {
		if err := operatorPost(ctx, tr, base+"/master/destroy-volumes", agentID, "volumes", volumes); err != nil {
			return err
		}
	}
	if len(reserved) > 0 {
		return operatorPost(ctx, tr, base+"/master/unreserve", agentID, "resources", reserved)
	}
	return nil
}

// operatorPost sends one operator call: form fields slaveId and the resources as JSON.
func operatorPost(ctx context.Context, tr *transport, endpoint, agentID, field string, res []mesos.Resource) error {
	js, err := json.Marshal(res)
	if err != nil {
		return err
	}
	form := url.Values{"slaveId": {agentID}, field: {string(js)}}
	resp, err := tr.do(ctx, http.MethodPost, endpoint, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", endpoint, errorBody(resp))
	}
	resp.Body.Close()
	return nil
}
