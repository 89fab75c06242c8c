package mesosbridge

import (
	"context"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// handle processes one event of the stream.
func (c *cluster) handle(ctx context.Context, cl *caller, re receivedEvent) error {
	ev := re.ev
	switch ev.Type {
	case scheduler.Event_OFFERS:
		return c.handleOffers(ctx, cl, ev.GetOffers().Offers, re.at)
	case scheduler.Event_UPDATE:
		return c.handleUpdate(ctx, cl, ev.GetUpdate().Status)
	case scheduler.Event_RESCIND:
		// Offers are answered as soon as they arrive, so a rescinded offer is one already
		// accepted or declined: tasks launched on it come back TASK_DROPPED and are
		// launched again; a decline needs nothing.
		c.metrics.offersRescind.Inc()
		c.log.V(1).Info("offer rescinded", "offerID", ev.GetRescind().OfferID.Value)
	case scheduler.Event_FAILURE:
		f := ev.GetFailure()
		// The tasks of a failed agent or executor get their own UPDATE events.
		c.log.Info("agent or executor failure", "agentID", f.GetAgentID().GetValue(),
			"executorID", f.GetExecutorID().GetValue(), "status", f.GetStatus())
		c.notify()
	case scheduler.Event_ERROR:
		// The master removed or refused the framework (e.g. "Framework has been removed",
		// or another scheduler failed it over) and closes the stream.
		msg := ev.GetError().GetMessage()
		return &subscribeError{reason: ConnRefused, message: "master: " + msg, masterError: msg}
	case scheduler.Event_HEARTBEAT, scheduler.Event_MESSAGE, scheduler.Event_SUBSCRIBED,
		scheduler.Event_INVERSE_OFFERS, scheduler.Event_RESCIND_INVERSE_OFFER, scheduler.Event_UPDATE_OPERATION_STATUS:
		// Heartbeats only feed the watchdog (the reader stamped the stream). The bridge sends
		// no framework messages, has no maintenance windows to honour and gives operations
		// no IDs, so the other events carry nothing it acts on.
	default:
		c.log.V(1).Info("ignoring unknown event", "type", ev.Type.String())
	}
	return nil
}
