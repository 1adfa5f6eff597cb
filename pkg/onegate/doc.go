// Package onegate is the OneGate client of the router's services: the
// documents a router VM may read (its virtual router, the networks and
// leases behind it, its OneFlow service, VMs) and the one write it may do
// (its own or a sibling VM's user template).
//
// # Configuration
//
// ConfigFromContext reads the context: ONEGATE_ENDPOINT (any path prefix is
// kept: https://cloud.example/onegate/vrouter), TOKENTXT (when empty, the
// file /run/one-context/token.txt under --root, read before every request so
// a token written later is picked up), VMID, and
// ONEAPP_VNF_ONEGATE_SKIP_TLS_VERIFY (YES/NO, default NO: certificates are
// verified; YES is for clouds whose OneGate has a self-signed certificate).
// No endpoint is ErrNotConfigured: callers decide what their feature does
// without OneGate. A malformed value is a *onecontext.VarError (exit 2).
//
// # Requests
//
// Every request carries X-ONEGATE-TOKEN, X-ONEGATE-VMID and
// Accept: application/json; /vrouter and /vnet/<id> ask for the extended
// document with the query parameter extended=true. Each attempt is bounded
// by Config.Timeout; network errors, attempt timeouts and 5xx answers are
// retried up to Config.Attempts times with exponential backoff and jitter;
// 4xx answers are not retried; cancelling ctx stops at once. Connections
// are kept alive between requests. Redirects are not followed and no proxy
// is used, so the token only ever goes to the endpoint. The token never
// appears in logs or errors (it is a Secret, which prints as "(secret)").
//
// # Last good answers
//
// The client keeps the last good answer to every GET. When a GET fails
// (after its retries, or because the answer does not decode) and an earlier
// answer exists, the call returns that earlier document together with a
// *StaleError: errors.Is(err, ErrStale) is true, and the error also wraps the
// failure. A 400 or 404 answer is not an outage but OneGate saying the object
// is gone or not visible to this VM: it returns no document and drops the
// last good one. So the rule for callers is:
//
//	doc, err := c.VNet(ctx, id)
//	switch {
//	case err == nil:                       // fresh
//	case errors.Is(err, onegate.ErrStale): // usable: log a warning, keep serving
//	default:                               // no document: keep what you have
//	}
//
// Networks and ServiceVMs follow the same rule for their whole result. A
// OneGate outage therefore never empties what the router serves.
//
// With Config.KeepDir set (the daemons), the last good answers are also
// kept on disk (keep.go), so a new client, in a restarted daemon, falls
// back on them as well.
//
// # Documents
//
// OneGate's JSON is OpenNebula's XML turned into JSON: numbers may come as
// strings, a repeated element may come as a single object, empty elements as
// {} or "". The Decode* functions read all of these; a value of the wrong
// shape reads as absent (None for IDs, the zero netip.Addr for addresses),
// and only a document that is not JSON, or lacks its root object, is an
// error (naming the document). Documents may hold secrets (user templates,
// KEEPALIVED_PASSWORD): never log them whole.
//
// # Writes
//
// UpdateVM merges attributes into a user template (PUT with type=1 and
// data=KEY=VALUE lines); EraseVM removes them (type=2). CheckAttribute
// refuses what OneGate would mangle (newlines, quotes, brackets, commas),
// naming the key and never the value.
package onegate
